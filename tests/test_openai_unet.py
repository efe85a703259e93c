"""The OpenAI UNet: official parameter names and shapes, strict loading of state dicts made
here in the official format, clear errors for wrong files, and the epsilon wrapper."""

import dataclasses
import json
import math
import os
import pickle
from pathlib import Path

import pytest
import torch

from dds.diffusion.checkpoints import CHECKPOINTS, FlagError, UNetConfig, checkpoint_spec
from dds.diffusion.official import load_openai_checkpoint
from dds.diffusion.one_shot import OneShotDenoiser
from dds.diffusion.openai_unet import AttentionBlock, OpenAIEps, UNetModel, build_unet, timestep_embedding
from dds.diffusion.schedules import alphas_cumprod
from dds.io import DataFileError, sha256_file

# state-dict keys and shapes of the two official checkpoints, in file order
OFFICIAL = json.loads((Path(__file__).parent / "data" / "openai_unet_shapes.json").read_text())
PARAMETERS = {"cifar10_uncond_50M_500K": 52_546_438, "256x256_diffusion_uncond": 552_814_086}
# reduced widths at which the official layouts stay valid (GroupNorm 32, 64-channel heads)
SMALL_WIDTH = {"cifar10_uncond_50M_500K": 32, "256x256_diffusion_uncond": 32}


def small_spec(name: str):
    """The official checkpoint's spec at a reduced width."""
    spec = CHECKPOINTS[name]
    return dataclasses.replace(spec, unet=dataclasses.replace(spec.unet, model_channels=SMALL_WIDTH[name]))


def official_state_dict(name: str, seed: int = 0) -> dict:
    """A state dict with the official names and shapes at the reduced width: every channel
    dimension (a multiple of the official width) scaled down, the others (3 or 6 image
    channels, kernel sizes) kept."""
    full, small = CHECKPOINTS[name].unet.model_channels, SMALL_WIDTH[name]
    g = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn([d * small // full if d % full == 0 else d for d in shape], generator=g) * 0.05
        for key, shape in OFFICIAL[name].items()
    }


def save_state_dict(state: dict, path) -> Path:
    torch.save(state, path)
    return Path(path)


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_full_size_model_has_the_official_names_and_shapes(name):
    with torch.device("meta"):
        model = build_unet(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(OFFICIAL[name])  # same keys, same order
    assert ours == OFFICIAL[name]
    total = sum(p.numel() for p in model.parameters())
    assert total == PARAMETERS[name] == sum(math.prod(s) for s in OFFICIAL[name].values())


def test_full_size_cifar10_model_builds_and_runs():
    model = build_unet("cifar10_uncond_50M_500K").eval()
    assert sum(p.numel() for p in model.parameters()) == 52_546_438
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), torch.tensor([250.0]))
    assert out.shape == (1, 6, 32, 32) and torch.isfinite(out).all()


def test_checkpoint_facts():
    cifar, imagenet = CHECKPOINTS["cifar10_uncond_50M_500K"], CHECKPOINTS["256x256_diffusion_uncond"]
    assert (cifar.schedule, cifar.num_timesteps, cifar.rescale_timesteps) == ("cosine", 4000, True)
    assert (imagenet.schedule, imagenet.num_timesteps, imagenet.rescale_timesteps) == ("linear", 1000, False)
    assert cifar.unet.attention_order == imagenet.unet.attention_order == "legacy"
    assert cifar.unet.out_channels == imagenet.unet.out_channels == 6
    assert cifar.unet.dropout == 0.3 and imagenet.unet.dropout == 0.0
    assert torch.equal(cifar.alphas_cumprod(), alphas_cumprod("cosine", 4000))
    assert torch.equal(imagenet.alphas_cumprod(), alphas_cumprod("linear", 1000))


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_official_format_state_dict_loads_strictly(tmp_path, name):
    state = official_state_dict(name)
    path = save_state_dict(state, tmp_path / f"{name}.pt")
    spec = small_spec(name)
    eps, abar = load_openai_checkpoint(path, spec, expected_sha256=sha256_file(path).upper())
    assert isinstance(eps, OpenAIEps) and not eps.training
    loaded = eps.unet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert torch.equal(abar, spec.alphas_cumprod()) and abar.dtype == torch.float64
    if name == "cifar10_uncond_50M_500K":  # a forward pass is cheap at 32x32
        with torch.no_grad():
            out = eps(torch.randn(2, 3, 32, 32), torch.tensor([10, 3000]))
        assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


@pytest.fixture
def cifar_file(tmp_path):
    return tmp_path / "cifar10_uncond_50M_500K.pt", official_state_dict("cifar10_uncond_50M_500K")


def test_missing_key_is_named(cifar_file):
    path, state = cifar_file
    del state["middle_block.1.qkv.weight"]
    save_state_dict(state, path)
    with pytest.raises(DataFileError, match=r"missing keys \(1\): middle_block\.1\.qkv\.weight") as err:
        load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"))
    assert str(path) in str(err.value)


def test_wrong_shape_and_unexpected_key_are_named(cifar_file):
    path, state = cifar_file
    state["out.2.weight"] = state["out.2.weight"][:3]  # a 3-channel output: learn_sigma off
    state["label_emb.weight"] = torch.zeros(1000, 128)
    save_state_dict(state, path)
    with pytest.raises(DataFileError) as err:
        load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"))
    message = str(err.value)
    assert "out.2.weight: file [3, 32, 3, 3], model [6, 32, 3, 3]" in message
    assert "unexpected keys (1): label_emb.weight" in message
    assert "learn_sigma" in message


def test_the_other_checkpoint_does_not_fit(tmp_path):
    path = save_state_dict(official_state_dict("256x256_diffusion_uncond"), tmp_path / "x.pt")
    with pytest.raises(DataFileError, match="do not fit the cifar10_uncond_50M_500K UNet"):
        load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"))


def test_wrong_sha256_names_file_and_both_hashes(cifar_file):
    path, state = cifar_file
    save_state_dict(state, path)
    actual = sha256_file(path)
    with pytest.raises(DataFileError) as err:
        load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"), expected_sha256="ab" * 32)
    message = str(err.value)
    assert str(path) in message and "ab" * 32 in message and actual in message
    assert CHECKPOINTS["cifar10_uncond_50M_500K"].url in message


def test_missing_file_names_the_download(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_openai_checkpoint(tmp_path / "nope.pt", "256x256_diffusion_uncond", expected_sha256="cd" * 32)
    message = str(err.value)
    assert "nope.pt: file not found" in message and "cd" * 32 in message
    assert CHECKPOINTS["256x256_diffusion_uncond"].url in message


class RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"out.2.weight": torch.zeros(1), "x": RunsCode(marker)}
    if fmt == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataFileError, match="refused to load") as err:
        load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"))
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_files_that_are_not_state_dicts_are_refused(tmp_path):
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(DataFileError, match="not a state dict"):
        load_openai_checkpoint(listed, small_spec("cifar10_uncond_50M_500K"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(DataFileError, match="garbage.pt"):
        load_openai_checkpoint(garbage, small_spec("cifar10_uncond_50M_500K"))


def test_eps_wrapper_rescales_timesteps_and_keeps_epsilon():
    torch.manual_seed(0)
    spec = small_spec("cifar10_uncond_50M_500K")
    unet = UNetModel(spec.unet).eval()
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0, 2000])
    with torch.no_grad():
        rescaled = OpenAIEps(unet, 4000, rescale_timesteps=True)(x, t)
        plain = OpenAIEps(unet, 4000, rescale_timesteps=False)(x, t)
        assert torch.equal(rescaled, unet(x, torch.tensor([0.0, 500.0]))[:, :3])
        assert torch.equal(plain, unet(x, t)[:, :3])
    assert not torch.allclose(rescaled, plain)


def test_eps_wrapper_drives_the_one_shot_denoiser(tmp_path):
    path = save_state_dict(official_state_dict("cifar10_uncond_50M_500K"), tmp_path / "c.pt")
    eps, abar = load_openai_checkpoint(path, small_spec("cifar10_uncond_50M_500K"))
    denoiser = OneShotDenoiser(eps, abar, sigma=0.25, output_size=(48, 48))
    assert denoiser.t == 1158
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = denoiser(x, torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3, 48, 48) and out.min() >= 0 and out.max() <= 1
    out.sum().backward()  # differentiable end to end, for adaptive attacks
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_timestep_embedding_closed_form():
    t = torch.tensor([0.0, 3.0, 250.5])
    emb = timestep_embedding(t, 8)
    for i in range(4):
        w = 10000 ** (-i / 4)
        # float32 frequencies: the phase at t=250 is good to ~1e-5
        assert torch.allclose(emb[:, i], torch.cos(t * w), atol=1e-4)
        assert torch.allclose(emb[:, 4 + i], torch.sin(t * w), atol=1e-4)
    assert timestep_embedding(t, 7).shape == (3, 7) and (timestep_embedding(t, 7)[:, -1] == 0).all()


def reference_attention(block: AttentionBlock, x: torch.Tensor, legacy: bool) -> torch.Tensor:
    """Per-head softmax(q^T k / sqrt(ch)) v, written out head by head from the qkv channels."""
    b, c, hgt, wdt = x.shape
    flat = x.reshape(b, c, -1)
    qkv = block.qkv(block.norm(flat))
    ch = c // block.heads
    heads = []
    for h in range(block.heads):
        if legacy:  # head h owns channels [3ch*h, 3ch*(h+1)): its q, k, v in turn
            q, k, v = (qkv[:, 3 * ch * h + i * ch : 3 * ch * h + (i + 1) * ch] for i in range(3))
        else:  # q of all heads, then k, then v
            q, k, v = (qkv[:, i * c + h * ch : i * c + (h + 1) * ch] for i in range(3))
        weights = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(ch), dim=-1)
        heads.append(torch.einsum("bts,bcs->bct", weights, v))
    return (flat + block.proj_out(torch.cat(heads, dim=1))).reshape(b, c, hgt, wdt)


@pytest.mark.parametrize("order", ["legacy", "new"])
def test_attention_orders_match_their_definition(order):
    torch.manual_seed(0)
    block = AttentionBlock(64, heads=4, order=order).eval()
    x = torch.randn(2, 64, 4, 4)
    with torch.no_grad():
        expected = reference_attention(block, x, legacy=order == "legacy")
        other = reference_attention(block, x, legacy=order != "legacy")
        got = block(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, other, atol=1e-3)  # the order matters with several heads


def test_heads_follow_num_head_channels():
    cfg = CHECKPOINTS["256x256_diffusion_uncond"].unet
    assert cfg.heads(512) == 8 and cfg.heads(1024, upsample=True) == 16
    cifar = CHECKPOINTS["cifar10_uncond_50M_500K"].unet
    assert cifar.heads(256) == 4
    assert dataclasses.replace(cifar, num_heads_upsample=2).heads(256, upsample=True) == 2


@pytest.mark.parametrize(
    "change, flag, message",
    [
        ({"attention_resolutions": (12,)}, "attention_resolutions", "attention_resolutions"),
        ({"model_channels": 48}, "num_channels", "multiple of 32"),
        ({"attention_order": "sideways"}, "use_new_attention_order", "legacy, new"),
        ({"image_size": 36}, "image_size", "does not halve 3 times"),
        # checked when the config is, not when the network is built: 256 channels at 16x16
        ({"num_heads": 3}, "num_heads", "256 attention channels are not divisible by num_heads=3"),
        ({"num_head_channels": 96}, "num_head_channels", "by num_head_channels=96"),
    ],
)
def test_bad_unet_config_is_named(change, flag, message):
    base = dataclasses.asdict(CHECKPOINTS["cifar10_uncond_50M_500K"].unet)
    with pytest.raises(FlagError, match=message) as err:
        UNetConfig(**{**base, **change})
    assert err.value.flag == flag  # the config key of the flag to fix


def test_checkpoint_spec_from_name_dict_and_errors():
    assert checkpoint_spec("cifar10_uncond_50M_500K") is CHECKPOINTS["cifar10_uncond_50M_500K"]
    spec = CHECKPOINTS["256x256_diffusion_uncond"]
    unet = {**dataclasses.asdict(spec.unet), "channel_mult": [1, 1, 2, 2, 4, 4]}  # lists, as YAML gives them
    as_dict = {**dataclasses.asdict(spec), "unet": unet}
    assert checkpoint_spec(as_dict) == spec
    with pytest.raises(ValueError, match="256x256_diffusion_uncond, cifar10_uncond_50M_500K"):
        checkpoint_spec("imagenet64")
    with pytest.raises(ValueError, match=r"unknown UNetConfig key\(s\) \['width'\]"):
        checkpoint_spec({**as_dict, "unet": {**as_dict["unet"], "width": 3}})
    with pytest.raises(ValueError, match="required: name, url"):
        checkpoint_spec({"name": "x"})

"""Any improved- or guided-diffusion checkpoint, described by the official command-line flags in
the config: the flags resolve to the architecture and diffusion (the two known checkpoints'
values as defaults), a state dict saved in the official format loads strictly through the
workflow's own path (config -> openai_denoiser -> denoiser file -> load_denoiser), and bad
flags are config errors naming the key."""

import copy
import dataclasses
import json
import re

import pytest
import torch

from conftest import REPO, TINY
from dds.config import ConfigError, validate
from dds.diffusion.checkpoints import CHECKPOINTS, FlagError
from dds.diffusion.flags import CHANNEL_MULT, checkpoint_flags, openai_checkpoint
from dds.diffusion.loading import load_denoiser
from dds.diffusion.one_shot import sigma_timestep
from dds.diffusion.openai_unet import OpenAIEps, UNetModel
from dds.diffusion.schedules import alphas_cumprod
from dds.io import DataFileError, load_tensors, read_json
from dds.pipeline.denoisers import openai_denoiser
from test_openai_unet import official_state_dict

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
GUIDED = "256x256_diffusion_uncond"
# the two setups that must load: guided-diffusion's 256x256 model at a reduced width (32
# channels, 32 per head: the widths 32..128 fit GroupNorm's 32 groups), and a model of one's
# own, improved-diffusion's ImageNet-64 flags (README: --image_size 64 --num_channels 128
# --num_res_blocks 3 --learn_sigma True --diffusion_steps 4000 --noise_schedule cosine) at
# width 32, with the rest left to the script_util defaults
SETUPS = {
    "guided-diffusion": (GUIDED, {"num_channels": 32, "num_head_channels": 32}),
    "improved-diffusion-64": (
        "imagenet64_mine",
        {
            "image_size": 64,
            "num_channels": 32,
            "num_res_blocks": 3,
            "learn_sigma": True,
            "noise_schedule": "cosine",
            "diffusion_steps": 4000,
            "rescale_timesteps": True,
        },
    ),
}
OWN_FLAGS = SETUPS["improved-diffusion-64"][1]
OWN = {"checkpoint": "imagenet64_mine", **OWN_FLAGS, "path": "mine.pt"}
SIZE = {"guided-diffusion": 256, "improved-diffusion-64": 64}


def config_with(denoiser: dict, image_size: int, **more) -> dict:
    """The tiny config with one openai denoiser `mine` (and `more` beside it), at this size."""
    config = copy.deepcopy(TINY)
    config["dataset"]["image_size"] = image_size
    config["denoisers"] = {"mine": {"kind": "openai", **denoiser}, **more}
    del config["adaptive"]["denoisers"], config["purification"]  # they name the tiny config's denoisers
    return config


# ---------------------------------------------------------------- flags -> architecture


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_known_checkpoints_are_their_flags(name):
    known = CHECKPOINTS[name]
    assert openai_checkpoint(name, {}, known.url) == known
    # the registry's values given as the flags of a model of one's own, channel_mult derived
    # from image_size as the official scripts do: the same model
    flags = checkpoint_flags(known)
    assert tuple(flags.pop("channel_mult")) == CHANNEL_MULT[known.unet.image_size]
    assert openai_checkpoint("mine", flags, known.url) == dataclasses.replace(known, name="mine")


def test_flags_override_a_known_checkpoint():
    spec = openai_checkpoint(*SETUPS["guided-diffusion"])
    registry = CHECKPOINTS[GUIDED]
    assert spec.unet == dataclasses.replace(registry.unet, model_channels=32, num_head_channels=32)
    assert (spec.schedule, spec.num_timesteps, spec.rescale_timesteps) == ("linear", 1000, False)
    assert spec.url is None  # the config's url, none given
    # another image size: channel_mult derived for it, unless given
    assert openai_checkpoint(GUIDED, {"image_size": 64}).unet.channel_mult == (1, 2, 3, 4)
    assert openai_checkpoint(GUIDED, {"image_size": 64, "channel_mult": "1,2,2,2"}).unet.channel_mult == (1, 2, 2, 2)


def test_a_model_of_ones_own_takes_the_script_defaults():
    spec = openai_checkpoint("mine", OWN_FLAGS, "https://example.org/mine.pt")
    unet = spec.unet
    assert (unet.image_size, unet.model_channels, unet.num_res_blocks, unet.channel_mult) == (64, 32, 3, (1, 2, 3, 4))
    assert unet.attention_resolutions == (16, 8) and unet.num_heads == 4
    assert unet.num_head_channels is None and unet.num_heads_upsample is None
    assert unet.use_scale_shift_norm and not unet.resblock_updown and unet.attention_order == "legacy"
    assert unet.learn_sigma and unet.dropout == 0.0
    assert (spec.schedule, spec.num_timesteps, spec.rescale_timesteps) == ("cosine", 4000, True)


def test_comma_separated_flags_and_lists_agree():
    flags = {**OWN_FLAGS, "num_head_channels": 32, "use_new_attention_order": True}
    as_text = openai_checkpoint("mine", {**flags, "attention_resolutions": "32,16,8", "channel_mult": "1,2,2,4"})
    as_list = openai_checkpoint("mine", {**flags, "attention_resolutions": [32, 16, 8], "channel_mult": [1, 2, 2, 4]})
    assert as_text == as_list
    assert as_text.unet.attention_resolutions == (32, 16, 8) and as_text.unet.channel_mult == (1, 2, 2, 4)
    assert as_text.unet.num_head_channels == 32 and as_text.unet.attention_order == "new"
    single = openai_checkpoint("mine", {**flags, "attention_resolutions": 16})  # YAML's `16`: a number
    assert single.unet.attention_resolutions == (16,)


@pytest.mark.parametrize(
    "change, flag, message",
    [
        ({"num_channel": 32}, "num_channel", "unknown flag"),
        ({"rescale_timesteps": None}, "checkpoint", "rescale_timesteps missing"),
        ({"image_size": 48}, "channel_mult", "for image_size 48 give"),
        ({"attention_resolutions": "16;8"}, "attention_resolutions", "not a comma-separated list"),
        ({"attention_resolutions": [12]}, "attention_resolutions", "with image_size=64 they are [64, 32, 16, 8]"),
        ({"num_channels": 48}, "num_channels", "multiple of 32"),
        ({"num_heads": 5}, "num_heads", "not divisible by num_heads=5"),
        ({"num_heads_upsample": 3}, "num_heads_upsample", "not divisible by num_heads_upsample=3"),
        ({"num_head_channels": 40}, "num_head_channels", "not divisible by num_head_channels=40"),
        ({"image_size": 36, "channel_mult": "1,2,2,2"}, "image_size", "does not halve 3 times evenly"),
    ],
)
def test_bad_flags_name_the_flag(change, flag, message):
    flags = {k: v for k, v in {**OWN_FLAGS, **change}.items() if v is not None}
    with pytest.raises(FlagError, match=re.escape(message)) as err:
        openai_checkpoint("mine", flags)
    assert err.value.flag == flag


# ---------------------------------------------------------------- strict loading, end to end


def save_official(spec, path, seed: int = 0) -> dict:
    """A UNet built from `spec` with seeded random weights, saved as the official code saves
    its checkpoints (torch.save of a plain state dict); returns the state dict."""
    torch.manual_seed(seed)
    state = UNetModel(spec.unet).state_dict()
    torch.save(state, path)
    return state


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_a_flag_configured_checkpoint_loads_strictly(setup, tmp_path):
    path = tmp_path / "model.pt"
    checkpoint, flags = SETUPS[setup]
    config = validate(config_with({"checkpoint": checkpoint, **flags, "path": str(path)}, SIZE[setup]), SCHEMA)
    spec = config["denoisers"]["mine"]
    expected = openai_checkpoint(checkpoint, flags)
    state = save_official(expected, path)
    if setup == "guided-diffusion":  # the official names and shapes, independently of dds's UNet
        official = official_state_dict(GUIDED)
        assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in official.items()}

    weights, metrics = tmp_path / "mine.safetensors", tmp_path / "mine.json"
    openai_denoiser(checkpoint=path, weights=weights, metrics=metrics, name="mine", spec=spec)
    _, meta = load_tensors(weights)
    assert json.loads(meta["spec"]) == json.loads(json.dumps(dataclasses.asdict(expected)))
    record = read_json(metrics)
    assert record["flags"] == checkpoint_flags(expected) and record["sha256_from"] == "first use"
    assert record["parameters"] == sum(v.numel() for v in state.values())

    denoiser = load_denoiser(weights, 0.25, "cpu")  # from the denoiser file alone
    eps = denoiser.eps_model
    assert isinstance(eps, OpenAIEps) and not eps.training
    loaded = eps.unet.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    abar = alphas_cumprod(expected.schedule, expected.num_timesteps)  # the flags' schedule
    assert denoiser.t == sigma_timestep(abar, 0.25) and denoiser.abar == float(abar[denoiser.t])

    reference = UNetModel(expected.unet).eval()
    reference.load_state_dict(state)
    x, t = torch.randn(1, 3, SIZE[setup], SIZE[setup]), torch.tensor([denoiser.t])
    fed = t * 1000 / expected.num_timesteps if expected.rescale_timesteps else t  # the timesteps it was trained on
    with torch.no_grad():
        assert torch.equal(eps(x, t), reference(x, fed)[:, :3])


def test_a_state_dict_of_other_flags_fails_strictly(tmp_path):
    path = tmp_path / "model.pt"
    config = validate(config_with({**OWN, "path": str(path)}, 64), SCHEMA)
    spec = config["denoisers"]["mine"]
    # trained with 2 residual blocks per level, configured with 3
    other = openai_checkpoint("other", {**OWN_FLAGS, "num_res_blocks": 2})
    save_official(other, path)
    weights = tmp_path / "mine.safetensors"
    with pytest.raises(DataFileError) as err:
        openai_denoiser(checkpoint=path, weights=weights, metrics=tmp_path / "mine.json", name="mine", spec=spec)
    message = str(err.value)
    assert "do not fit the imagenet64_mine UNet (strict load)" in message and "num_res_blocks" in message
    assert "missing keys" in message and "wrong shapes" in message
    assert not weights.exists()


# ---------------------------------------------------------------- config errors before any job


# case: (the denoiser's mapping, the dataset's image size, the texts the error must hold)
BAD = {
    "unknown flag": (
        {**OWN, "num_channel": 32},
        64,
        ["'denoisers.mine'", "'num_channel' was unexpected"],
    ),
    "attention at no feature-map size": (
        {**OWN, "attention_resolutions": "16,12"},
        64,
        ["'denoisers.mine.attention_resolutions'", "[12] are not feature-map sizes"],
    ),
    "widths not multiples of 32": (
        {**OWN, "num_channels": 40},
        64,
        ["'denoisers.mine.num_channels'", "multiple of 32"],
    ),
    "heads that do not divide": (
        {**OWN, "num_head_channels": 48},
        64,
        ["'denoisers.mine.num_head_channels'", "num_head_channels=48"],
    ),
    "image size of another dataset": (
        OWN,
        32,
        ["'denoisers.mine.image_size'", "denoises 64x64", "dataset.image_size is 32"],
    ),
    "own model without a required flag": (
        {k: v for k, v in OWN.items() if k != "noise_schedule"},
        64,
        ["'denoisers.mine.checkpoint'", "'imagenet64_mine' is not a checkpoint dds knows", "noise_schedule missing"],
    ),
    "size without a derived channel_mult": (
        {**OWN, "image_size": 96},
        96,
        ["'denoisers.mine.channel_mult'", "for image_size 96 give"],
    ),
    "comma list with a typo": (
        {**OWN, "attention_resolutions": "16;8"},
        64,
        ["'denoisers.mine.attention_resolutions'", "does not match"],
    ),
    "neither url nor path (own model)": (
        {k: v for k, v in OWN.items() if k != "path"},
        64,
        ["'denoisers.mine'", "neither url nor path", "give `path:`", "`url:` to download it from"],
    ),
    "neither url nor path (known checkpoint)": (
        {"checkpoint": GUIDED},
        256,
        ["'denoisers.mine'", "neither url nor path", CHECKPOINTS[GUIDED].url],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_flags_are_config_errors_naming_the_key(case):
    denoiser, size, texts = BAD[case]
    with pytest.raises(ConfigError) as err:
        validate(config_with(denoiser, size), SCHEMA)
    for text in texts:
        assert text in str(err.value), f"{text!r} not in {err.value}"


def test_one_downloaded_file_has_one_architecture():
    guided = {"kind": "openai", "checkpoint": GUIDED, "url": CHECKPOINTS[GUIDED].url}
    config = config_with(guided, 256, wide=guided)
    validate(copy.deepcopy(config), SCHEMA)  # the same download twice: one file
    config["denoisers"]["wide"] = {**guided, "num_channels": 128}
    with pytest.raises(ConfigError, match="'denoisers.wide'.*downloaded for denoisers.mine.*one architecture"):
        validate(copy.deepcopy(config), SCHEMA)
    config["denoisers"]["wide"]["path"] = "wide.pt"  # a file of its own
    validate(config, SCHEMA)


def test_a_denoiser_file_without_the_resolved_spec_says_how_to_remake_it(tmp_path):
    from dds.io import DataFileError, save_tensors

    old = tmp_path / "improved-diffusion.safetensors"
    save_tensors({}, old, {"kind": "openai", "checkpoint": "cifar10_uncond_50M_500K", "path": "x.pt", "sha256": "0"})
    with pytest.raises(DataFileError, match="earlier dds.*--forcerun openai_denoiser"):
        load_denoiser(old, 0.25, "cpu")

"""Feature denoising (Xie et al. 2019): the non-local block against its formula, identity at
initialisation, insertion after the stages of a timm ResNet, and the safetensors round trip."""

import math

import pytest
import torch

from dds.io import DataFileError
from dds.models.classifiers import build_classifier, load_classifier, save_classifier
from dds.models.feature_denoising import NonLocalDenoise, add_denoising_blocks

MEAN, STD = [0.3], [0.25]
ALL_STAGES = {"variant": "softmax", "stages": [1, 2, 3, 4]}


def randomise(module: torch.nn.Module, seed: int = 1) -> None:
    """Non-zero BN scales and statistics everywhere: a fresh block is the identity, which would
    hide any error in the non-local branch."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.rand(tensor.shape, generator=gen) + 0.5
                    if "running_var" in name
                    else torch.randn(tensor.shape, generator=gen) * 0.5
                )


@pytest.mark.parametrize("variant", ["softmax", "dot"])
@pytest.mark.parametrize("training", [False, True])
def test_fresh_block_keeps_shape_and_is_the_identity(variant, training):
    torch.manual_seed(0)
    block = NonLocalDenoise(8, variant).train(training)
    x = torch.randn(2, 8, 5, 3)
    assert torch.equal(block(x), x)
    assert torch.all(block.bn.weight == 0)


def formula(block: NonLocalDenoise, x: torch.Tensor) -> torch.Tensor:
    """y = x + BN(conv1x1(nonlocal(x))), written out index by index (eval-mode BN)."""
    n, c, h, w = x.shape
    wt, wp, wc = (m.weight[:, :, 0, 0] for m in (block.theta, block.phi, block.conv))
    pixels = x.reshape(n, c, h * w)
    theta = torch.einsum("dc,nci->ndi", wt, pixels)
    phi = torch.einsum("dc,ncj->ndj", wp, pixels)
    dots = torch.einsum("ndi,ndj->nij", theta, phi)
    if block.variant == "softmax":
        weights = torch.exp(dots / math.sqrt(wt.shape[0]))
        weights = weights / weights.sum(2, keepdim=True)  # normalised over j for each i
    else:
        weights = dots / (h * w)
    mean = torch.zeros_like(pixels)
    for i in range(h * w):
        for j in range(h * w):
            mean[:, :, i] += weights[:, i, j, None] * pixels[:, :, j]
    conv = torch.einsum("oc,nci->noi", wc, mean)
    bn = block.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps))[None, :, None]
    normed = (conv - bn.running_mean[None, :, None]) * scale + bn.bias[None, :, None]
    return (pixels + normed).reshape(n, c, h, w)


@pytest.mark.parametrize("variant", ["softmax", "dot"])
def test_block_matches_its_formula(variant):
    torch.manual_seed(0)
    block = NonLocalDenoise(6, variant).double().eval()
    randomise(block)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        out, expected = block(x), formula(block, x)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)  # the non-local branch contributes
    assert torch.allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_unknown_variant():
    with pytest.raises(ValueError, match="allowed: softmax, dot"):
        NonLocalDenoise(8, "median")


def build(seed=0, feature_denoising=None):
    torch.manual_seed(seed)
    return build_classifier("resnet18", {}, 1, 10, MEAN, STD, feature_denoising)


@pytest.mark.parametrize("variant", ["softmax", "dot"])
def test_fresh_blocks_leave_the_resnet_unchanged(variant):
    plain, denoised = build(), build(feature_denoising={"variant": variant, "stages": [1, 2, 3, 4]})
    blocks = [m for m in denoised.modules() if isinstance(m, NonLocalDenoise)]
    assert [b.conv.in_channels for b in blocks] == [64, 128, 256, 512]
    assert all(denoised.net.get_submodule(f"layer{s}")[-1] is b for s, b in zip((1, 2, 3, 4), blocks))
    # the ResNet's weights keep their names and values: the blocks draw after timm does
    plain_state, denoised_state = plain.state_dict(), denoised.state_dict()
    assert all(torch.equal(plain_state[k], denoised_state[k]) for k in plain_state)
    x = torch.rand((3, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    for training in (False, True):
        plain.train(training), denoised.train(training)
        with torch.no_grad():
            out = denoised(x)
            assert out.shape == (3, 10)
            assert torch.equal(out, plain(x))


def test_blocks_only_after_the_chosen_stages():
    model = build(feature_denoising={"variant": "dot", "stages": [2, 4]})
    names = [n for n, m in model.named_modules() if isinstance(m, NonLocalDenoise)]
    assert names == ["net.layer2.2", "net.layer4.2"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"variant": "gaussian", "stages": [1]}, "feature_denoising.variant"),
        ({"variant": "softmax", "stages": []}, "feature_denoising.stages"),
        ({"variant": "softmax", "stages": [0, 5]}, "feature_denoising.stages"),
        ({"variant": "softmax", "stages": [2, 2]}, "feature_denoising.stages"),
        ({"variant": "softmax", "stages": [1], "embed": False}, "unknown key"),
    ],
)
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        build(feature_denoising=spec)


def test_only_resnets_take_blocks():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", img_size=16, patch_size=4, depth=1, in_chans=1, num_classes=10)
    with pytest.raises(ValueError, match="no ResNet stage layer1"):
        add_denoising_blocks(vit, ALL_STAGES)


def test_round_trip(tmp_path):
    model = build(feature_denoising=ALL_STAGES).eval()
    randomise(model.net.layer3[-1])  # a trained-looking block, not the identity
    spec = {"model": "resnet18", "kwargs": {}, "feature_denoising": ALL_STAGES}
    path = tmp_path / "fd.safetensors"
    save_classifier(model, path, spec, 1, 10)
    loaded = load_classifier(path)
    x = torch.rand((2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert not torch.equal(loaded(x), build().eval()(x))
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys() and all(torch.equal(state[k], loaded_state[k]) for k in state)
    # a spec that forgets the blocks writes a file whose weights do not fit: strict loading says so
    save_classifier(model, path, {"model": "resnet18", "kwargs": {}}, 1, 10)
    with pytest.raises(DataFileError, match="do not fit") as info:
        load_classifier(path)
    assert str(path) in str(info.value)

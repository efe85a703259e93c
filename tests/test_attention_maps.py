"""Attention maps: CBAM spatial attention through a hook, Grad-CAM for the default
classifiers, how far maps move under attack, and the summary table (the figure grid is in
test_figures_report.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from dds.attacks.generate import attack
from dds.evaluation.attention_maps import (
    attention_maps,
    attention_shift,
    cbam_spatial_maps,
    gradcam_maps,
    rank_correlation,
    top_k_iou,
)
from dds.models.classifiers import build_classifier
from dds.reporting.attack_tables import attention_shift_table

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
SPECS = yaml.safe_load(CONFIG.read_text())["classifiers"]
PGD = {"method": "pgd_linf", "steps": 5, "step_size": 2.5, "step_mode": "relative", "random_start": False}


@pytest.fixture(scope="module")
def digits16(digits8):
    """Six digits at the default config's 16x16."""
    images = F.interpolate(digits8.images[:6], size=(16, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, digits8.labels[:6]


def build(name):
    torch.manual_seed(0)
    spec = SPECS[name]
    model = build_classifier(spec["model"], spec.get("kwargs", {}), 1, 10, [0.3], [0.25]).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # timm starts the last BN of each residual branch at zero scale, and CBAM sits on that
        # branch: untrained, its spatial maps are constant. Give those BNs trained-looking scales.
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.any():
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
    return model


def check_maps(maps, n):
    assert maps.shape == (n, 16, 16) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    peaks = maps.amax((1, 2))
    assert torch.all((peaks == 1) | (maps.flatten(1) == 0).all(1))  # min-max normalised, or constant
    assert (peaks == 1).sum() >= n / 2  # Grad-CAM of an untrained model is all negative (zero) for some


@pytest.mark.parametrize(
    "name, method", [("resnet", "gradcam"), ("cbam-resnet", "gradcam"), ("vit", "gradcam"), ("cbam-resnet", "cbam")]
)
def test_maps_fit_the_input_and_move_under_attack(digits16, name, method):
    images, labels = digits16
    model = build(name)
    clean = attention_maps(method, model, images, labels)
    check_maps(clean, len(images))
    adversarial = attack(model, PGD, 0.3, images, labels, 64, 0, "cpu")
    attacked = attention_maps(method, model, adversarial, labels)
    check_maps(attacked, len(images))
    assert not torch.allclose(clean, attacked, atol=1e-3)
    assert np.nanmean(rank_correlation(clean, attacked)) < 0.99
    assert all(p.grad is None for p in model.parameters())  # Grad-CAM cleans up after itself


def last_block_map(model, images, block):
    """The sigmoid gate of `block`'s CBAM spatial attention, recomputed from its input."""
    captured = []
    handle = block.se.spatial.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    with torch.no_grad():
        model(images)
        x = captured[0]
        spatial = block.se.spatial
        gate = torch.sigmoid(spatial.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))[:, 0]
    handle.remove()
    up = F.interpolate(gate[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low, high = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    return (up - low) / (high - low)


def test_cbam_hook_returns_the_last_blocks_spatial_map():
    model = build("cbam-resnet")
    images = torch.rand((2, 1, 64, 64), generator=torch.Generator().manual_seed(0))  # layer4 is 2x2 here
    maps = cbam_spatial_maps(model, images)
    assert maps.shape == (2, 64, 64)
    assert torch.allclose(maps, last_block_map(model, images, model.net.layer4[-1]), atol=1e-6)


def test_cbam_skips_blocks_without_spatial_extent(digits16):
    """At 16x16 layer3 and layer4 are 1x1: the deepest map with a 'where' is layer2's."""
    images, _ = digits16
    model = build("cbam-resnet")
    assert torch.allclose(
        cbam_spatial_maps(model, images), last_block_map(model, images, model.net.layer2[-1]), atol=1e-6
    )


def test_cbam_maps_need_a_cbam_model(digits16):
    with pytest.raises(ValueError, match="attn_layer: cbam"):
        cbam_spatial_maps(build("resnet"), digits16[0])
    with pytest.raises(ValueError, match="allowed: gradcam, cbam"):
        attention_maps("saliency", build("resnet"), *digits16)


def test_gradcam_explains_the_given_class(digits16):
    images, labels = digits16
    model = build("resnet")
    assert not torch.allclose(gradcam_maps(model, images, labels), gradcam_maps(model, images, (labels + 1) % 10))


def test_rank_correlation_and_top_k_iou_by_hand():
    ramp = torch.arange(16.0).view(1, 4, 4) / 15
    maps = torch.cat([ramp, ramp, ramp])
    others = torch.cat([ramp, 1 - ramp, torch.zeros(1, 4, 4)])
    rho = rank_correlation(maps, others)
    assert rho[0] == pytest.approx(1) and rho[1] == pytest.approx(-1) and np.isnan(rho[2])
    # top 25%: pixels 12..15 of the ramp; of the reversed ramp 0..3; of zeros the first four
    assert top_k_iou(maps, others, 0.25).tolist() == [1.0, 0.0, 0.0]
    moved = torch.zeros(16)
    moved[[10, 11, 14, 15]] = torch.tensor([1.0, 2, 3, 4])  # top 4 {10, 11, 14, 15} against {12, ..., 15}
    assert top_k_iou(ramp, moved.view(1, 4, 4), 0.25)[0] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="one shape"):
        rank_correlation(maps, ramp)


def test_shift_table_summarises_per_condition():
    ramp = torch.arange(16.0).view(1, 4, 4).repeat(2, 1, 1) / 15
    rows = [
        attention_shift(ramp, ramp).assign(
            classifier="resnet", denoiser="ddpm", method="gradcam", condition="clean", epsilon=0.0, sigma=np.nan
        ),
        attention_shift(ramp, torch.stack([1 - ramp[0], torch.zeros(4, 4)])).assign(
            classifier="resnet", denoiser="ddpm", method="gradcam", condition="adversarial", epsilon=0.1, sigma=np.nan
        ),
        attention_shift(ramp, ramp).assign(
            classifier="resnet", denoiser="ddpm", method="gradcam", condition="denoised", epsilon=0.1, sigma=0.5
        ),
    ]
    table = attention_shift_table(pd.concat(rows, ignore_index=True)).set_index("condition")
    assert table.loc["clean", "spearman_mean"] == pytest.approx(1) and table.loc["clean", "images"] == 2
    assert table.loc["adversarial", "spearman_mean"] == pytest.approx(-1)  # the constant map is left out
    assert table.loc["adversarial", "constant_maps"] == 1
    assert table.loc["denoised", "sigma"] == 0.5 and np.isnan(table.loc["clean", "sigma"])
    assert table.loc["denoised", "topk_iou_mean"] == 1
    with pytest.raises(ValueError, match="classifier"):
        attention_shift_table(rows[0].drop(columns="classifier"))

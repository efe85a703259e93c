"""Feature denoising (Xie et al. 2019, "Feature Denoising for Improving Adversarial
Robustness"): a non-local means block `y = x + BN(conv1x1(nonlocal(x)))` after stages of a
timm ResNet, added to the timm model itself rather than to a copy of the ResNet code."""

import math

import torch
import torch.nn.functional as F
from torch import nn

# Gaussian non-local means (softmax of embedded dot products) or its dot-product variant
VARIANTS = ("softmax", "dot")
STAGES = (1, 2, 3, 4)  # timm ResNets name their stages layer1..layer4


class NonLocalDenoise(nn.Module):
    """`y = x + BN(conv1x1(nonlocal(x)))` with the non-local weighted mean over all positions j
    `nonlocal(x)_i = sum_j w(i, j) x_j`, where, with 1x1 embeddings theta and phi to C/2 channels,
    softmax: `w(i, .) = softmax_j(theta(x)_i . phi(x)_j / sqrt(C/2))`;
    dot:     `w(i, j) = theta(x)_i . phi(x)_j / (H*W)`.
    BN's scale starts at zero, so a fresh block is the identity and leaves a trained network's
    function unchanged until training moves it."""

    def __init__(self, channels: int, variant: str = "softmax"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown non-local variant {variant!r}; allowed: {', '.join(VARIANTS)}")
        self.variant = variant
        embed = max(1, channels // 2)
        self.theta = nn.Conv2d(channels, embed, 1, bias=False)
        self.phi = nn.Conv2d(channels, embed, 1, bias=False)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)  # no bias: BN follows
        self.bn = nn.BatchNorm2d(channels)
        # as the authors' code: small embeddings make the first affinities nearly uniform
        nn.init.normal_(self.theta.weight, std=0.01)
        nn.init.normal_(self.phi.weight, std=0.01)
        nn.init.zeros_(self.bn.weight)

    def nonlocal_mean(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta, phi, g = self.theta(x).flatten(2), self.phi(x).flatten(2), x.flatten(2)  # [N, C', HW], [N, C, HW]
        if self.variant == "softmax":
            weights = F.softmax(theta.transpose(1, 2) @ phi / math.sqrt(theta.shape[1]), dim=-1)  # [N, HW_i, HW_j]
            out = g @ weights.transpose(1, 2)
        else:
            # (g phi^T) theta equals g (theta^T phi)^T without the HW x HW affinity matrix
            out = (g @ phi.transpose(1, 2)) @ theta / (h * w)
        return out.view(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.conv(self.nonlocal_mean(x)))


def check_spec(spec: dict) -> None:
    """Raise a ValueError naming the key when a `feature_denoising` spec cannot be built."""
    unknown = sorted(set(spec) - {"variant", "stages"})
    if unknown:
        raise ValueError(f"feature_denoising: unknown key(s) {unknown}; allowed: 'variant', 'stages'")
    if spec.get("variant") not in VARIANTS:
        raise ValueError(f"feature_denoising.variant: {spec.get('variant')!r}; allowed: {', '.join(VARIANTS)}")
    stages = spec.get("stages")
    if (
        not isinstance(stages, list)
        or not stages
        or any(s not in STAGES for s in stages)
        or len(set(stages)) != len(stages)
    ):
        raise ValueError(
            f"feature_denoising.stages: {stages!r}; give distinct ResNet stages among {list(STAGES)}, "
            "e.g. [1, 2, 3, 4] for a block after every stage as in Xie et al."
        )


def add_denoising_blocks(net: nn.Module, spec: dict) -> nn.Module:
    """Append a NonLocalDenoise block to the end of each ResNet stage `layer{s}` of a timm
    ResNet, s in spec["stages"]; the stage's own weights keep their state-dict names."""
    check_spec(spec)
    channels = {info["module"]: info["num_chs"] for info in getattr(net, "feature_info", [])}
    for s in spec["stages"]:
        stage = getattr(net, f"layer{s}", None)
        if not isinstance(stage, nn.Sequential) or f"layer{s}" not in channels:
            raise ValueError(
                f"feature_denoising.stages: {type(net).__name__} has no ResNet stage layer{s}; "
                "feature denoising needs a timm ResNet (resnet18, resnet50, ...)"
            )
        stage.append(NonLocalDenoise(channels[f"layer{s}"], spec["variant"]))
    return net

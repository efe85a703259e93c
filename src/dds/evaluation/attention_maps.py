"""Where a classifier looks, for clean, attacked and denoised images (the heatmaps of the
Safeguarding Attention paper), and how far that moves: the spatial attention of a CBAM
ResNet through a forward hook, Grad-CAM (pytorch-grad-cam) for any classifier, per-image
rank correlation and top-k overlap with the clean image's map (the figure grid is
dds.reporting.attack_figures.attention_figure).

Every map is [N, H, W] at the input's spatial size, finite, min-max normalised per image to
[0, 1] (all zeros where the map is constant)."""

import logging

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from timm.layers.cbam import LightSpatialAttn, SpatialAttn
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from dds.batching import in_batches

log = logging.getLogger(__name__)


def _normalise(maps: torch.Tensor, size) -> torch.Tensor:
    """[N, h, w] -> [N, H, W]: bilinear upsampling, then min-max per image."""
    maps = F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin((1, 2), keepdim=True)
    span = maps.amax((1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))


def _spatial_outputs(model: nn.Module, modules: list, images: torch.Tensor, batch_size: int) -> list:
    """The outputs of `modules` (forward hooks) for all images, one [N, ...] tensor each."""
    device = next(model.parameters()).device
    latest = [None] * len(modules)  # each module's output on the batch being run
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, k=k: latest.__setitem__(k, out.detach().cpu()))
        for k, m in enumerate(modules)
    ]

    def step(start, stop):
        model(images[start:stop].to(device))
        return list(latest)

    try:
        model.eval()
        with torch.no_grad():
            batches = in_batches("attention maps", len(images), batch_size, step)
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(parts) for parts in zip(*batches)]


def cbam_spatial_maps(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The spatial attention (the sigmoid gate of CBAM's spatial module) of the deepest CBAM
    block whose map has more than one pixel: the last block for inputs of 64 px and more;
    for 16 px digits the last stages are 1x1, where attention says nothing about where."""
    if not has_cbam(model):
        raise ValueError(
            "cbam_spatial_maps: the model has no CBAM spatial attention; build a timm ResNet with "
            "kwargs block_args: {attn_layer: cbam}, or use Grad-CAM (method 'gradcam')"
        )
    gates = [m.gate for m in model.modules() if isinstance(m, (SpatialAttn, LightSpatialAttn))]
    maps = [out[:, 0] for out in _spatial_outputs(model, gates, images, batch_size)]
    spatial = [m for m in maps if m.shape[-2] * m.shape[-1] > 1]
    if not spatial:
        raise ValueError(f"cbam_spatial_maps: every CBAM map is 1x1 at input size {tuple(images.shape[-2:])}")
    return _normalise(spatial[-1], images.shape[-2:])


def _vit_tokens_to_grid(net: VisionTransformer):
    """Grad-CAM needs [N, C, h, w]: drop the class (and register) tokens, lay the patches out."""
    grid = net.patch_embed.grid_size

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, net.num_prefix_tokens :]
        return patches.reshape(len(tokens), *grid, tokens.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def gradcam_target(model: nn.Module, image_shape) -> tuple[nn.Module, object]:
    """The layer Grad-CAM explains, and its reshape transform: the last block's first norm for
    a timm ViT (its patch tokens), otherwise the deepest of the timm model's feature stages
    (`feature_info`) whose output has more than one pixel at this input size."""
    net = model.net if hasattr(model, "net") else model  # dds.models.classifiers.Normalized or a bare timm model
    if isinstance(net, VisionTransformer):
        return net.blocks[-1].norm1, _vit_tokens_to_grid(net)
    names = [info["module"] for info in getattr(net, "feature_info", [])]
    if not names:
        raise ValueError(
            f"gradcam_target: {type(net).__name__} has no timm feature_info to choose a layer from; "
            "use a timm CNN or ViT"
        )
    stages = [net.get_submodule(name) for name in names]
    outputs = _spatial_outputs(model, stages, torch.zeros((1, *image_shape)), 1)
    spatial = [stage for stage, out in zip(stages, outputs) if out.shape[-2] * out.shape[-1] > 1]
    if not spatial:
        raise ValueError(f"gradcam_target: every feature stage of {type(net).__name__} is 1x1 at {tuple(image_shape)}")
    return spatial[-1], None


def gradcam_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM of class `labels` (pass the true labels, so that the clean, attacked and
    denoised maps of an image explain the same class)."""
    layer, reshape = gradcam_target(model, images.shape[1:])
    device = next(model.parameters()).device
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:

        def step(start, stop):
            targets = [ClassifierOutputTarget(int(c)) for c in labels[start:stop]]
            return torch.from_numpy(cam(input_tensor=images[start:stop].to(device), targets=targets))

        maps = in_batches("attention maps", len(images), batch_size, step)
    model.zero_grad(set_to_none=True)  # Grad-CAM's backward pass leaves parameter gradients behind
    return _normalise(torch.cat(maps), images.shape[-2:])


METHODS = ("gradcam", "cbam")


def has_cbam(model: nn.Module) -> bool:
    return any(isinstance(m, (SpatialAttn, LightSpatialAttn)) for m in model.modules())


def methods_for(model: nn.Module) -> list[str]:
    """Grad-CAM for every classifier, and CBAM's own spatial attention where it has one."""
    return ["gradcam", "cbam"] if has_cbam(model) else ["gradcam"]


def attention_maps(
    method: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """[N, H, W] maps in [0, 1] by `method`: 'gradcam' (any classifier) or 'cbam' (CBAM ResNets)."""
    if method == "gradcam":
        return gradcam_maps(model, images, labels, batch_size)
    if method == "cbam":
        return cbam_spatial_maps(model, images, batch_size)
    raise ValueError(f"unknown attention method {method!r}; allowed: {', '.join(METHODS)}")


def _check_pair(reference: torch.Tensor, maps: torch.Tensor) -> None:
    if reference.ndim != 3 or reference.shape != maps.shape:
        raise ValueError(
            f"attention maps must be two [N, H, W] tensors of one shape, got {tuple(reference.shape)} "
            f"and {tuple(maps.shape)}"
        )


def rank_correlation(reference: torch.Tensor, maps: torch.Tensor) -> np.ndarray:
    """Spearman's rank correlation of each image's pixels between two maps; NaN where either
    map is constant (no ranking to compare)."""
    _check_pair(reference, maps)
    a, b = reference.flatten(1).double().numpy(), maps.flatten(1).double().numpy()
    return np.array([spearmanr(u, v).statistic if np.ptp(u) > 0 and np.ptp(v) > 0 else np.nan for u, v in zip(a, b)])


def top_k_iou(reference: torch.Tensor, maps: torch.Tensor, fraction: float = 0.2) -> np.ndarray:
    """Per image, the intersection over union of the `fraction` most attended pixels of each
    map (ties broken by pixel order, so the sets always hold exactly k pixels)."""
    _check_pair(reference, maps)
    if not 0 < fraction <= 1:
        raise ValueError(f"top_k_iou: fraction {fraction} must be in (0, 1]")
    k = max(1, round(fraction * reference[0].numel()))

    def top(m: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(m.flatten(1).shape, dtype=torch.bool)
        order = torch.sort(m.flatten(1), dim=1, descending=True, stable=True).indices
        return mask.scatter_(1, order[:, :k], True)

    a, b = top(reference), top(maps)
    return ((a & b).sum(1) / (a | b).sum(1)).double().numpy()


def attention_shift(reference: torch.Tensor, maps: torch.Tensor, top_fraction: float = 0.2) -> pd.DataFrame:
    """One row per image: `spearman` and `topk_iou` of `maps` against the `reference` (clean)
    maps of the same images (summarised by dds.reporting.attack_tables.attention_shift_table)."""
    return pd.DataFrame(
        {"spearman": rank_correlation(reference, maps), "topk_iou": top_k_iou(reference, maps, top_fraction)}
    )


def attention_under_attack(model: nn.Module, clean, sets: list, classifier: str, batch_size: int) -> tuple:
    """Maps by every method of `model` (methods_for) of the `clean` images and of each of `sets`
    ((condition, epsilon, sigma, ImageSet) holding the same images), each set's maps against the
    clean ones (attention_shift, one row per image with its labels and idx), and the
    Grad-CAM maps [clean, *sets] for the figure."""
    for *_, images in sets:
        if not torch.equal(images.idx, clean.idx):
            raise ValueError(
                "attention: an image set does not hold the first evaluation images in order; "
                "delete it and rerun the rule that makes it"
            )
    frames, gradcam = [], []
    for method in methods_for(model):
        reference = attention_maps(method, model, clean.images, clean.labels, batch_size)
        maps = [attention_maps(method, model, images.images, clean.labels, batch_size) for *_, images in sets]
        frames += [
            attention_shift(reference, m).assign(
                idx=clean.idx.numpy(),
                classifier=classifier,
                method=method,
                condition=condition,
                epsilon=eps,
                sigma=sigma,
            )
            for (condition, eps, sigma, _), m in zip(sets, maps)
        ]
        if method == "gradcam":
            gradcam = [reference, *maps]
        log.info("%s: %s maps of %d images in %d conditions", classifier, method, len(clean), len(sets) + 1)
    return pd.concat(frames, ignore_index=True), gradcam

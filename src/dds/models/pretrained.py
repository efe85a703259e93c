"""Pretrained timm classifiers: the weights come from the local timm/Hugging Face cache (timm
downloads them into it when the machine is online) or from a file named in the config, and
the model's own preprocessing (its pretrained input size, interpolation, mean and std)
becomes the classifier's resize and normalisation."""

import os
from pathlib import Path

import timm
from timm.models import get_pretrained_cfg

from dds.io import DataFileError
from dds.models.classifiers import Normalized

RESIZE_MODES = ("nearest", "bilinear", "bicubic")


def _how_to_get(name: str, model: str, cfg) -> str:
    from huggingface_hub import constants

    where = (
        f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors"
        if cfg.hf_hub_id
        else cfg.url or "the weights file"
    )
    return (
        f'on a machine that is online, fill the cache with `python -c "import timm; '
        f"timm.create_model('{model}', pretrained=True)\"` (cache: {constants.HF_HUB_CACHE}; copy it here or "
        f"share it through HF_HOME), or download {where} and set classifiers.{name}.weights to its path"
    )


def load_pretrained(name: str, model: str, kwargs: dict, weights=None, resize: dict | None = None) -> Normalized:
    """Classifier `name` of the config: timm model `model` (with its pretrained tag, e.g.
    coatnet_rmlp_2_rw_384.sw_in12k_ft_in1k) with pretrained weights from `weights` (a
    .safetensors, .pth or .bin file) or else the timm/Hugging Face cache. `resize` overrides
    the pretrained input size and interpolation. timm's crop_pct is not applied: the
    images are already center crops at the dataset's size, and are resized whole."""
    if not timm.is_model(model):
        raise ValueError(f"classifiers.{name}.model: unknown timm model {model!r}; see timm.list_pretrained()")
    try:
        cfg = get_pretrained_cfg(model)
    except RuntimeError:  # an architecture timm knows, with a tag it does not
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(
            f"classifiers.{name}.model: timm has no pretrained weights for {model!r}; "
            f"see timm.list_pretrained('{model.split('.')[0]}*')"
        )
    overlay = None
    if weights is not None:
        if not Path(weights).is_file():
            raise DataFileError(
                f"{weights}: weights file of classifiers.{name} not found. To fix: " + _how_to_get(name, model, cfg)
            )
        overlay = {"file": str(weights)}
    try:
        net = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except OSError as err:  # offline without a cached copy (LocalEntryNotFoundError), or unreachable
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        why = "HF_HUB_OFFLINE is set" if offline else f"the download failed: {str(err).splitlines()[0]}"
        raise DataFileError(
            f"classifiers.{name}: the pretrained weights of timm model {model!r} are not in the local "
            f"cache, and {why}. To fix: " + _how_to_get(name, model, cfg)
        ) from None
    if resize is None:
        mode = net.pretrained_cfg["interpolation"]
        if mode not in RESIZE_MODES:
            raise ValueError(
                f"classifiers.{name}: {model} was pretrained with {mode!r} resizing, which dds does not "
                f"do; set classifiers.{name}.resize with a mode among {', '.join(RESIZE_MODES)}"
            )
        resize = {"size": int(net.pretrained_cfg["input_size"][-1]), "mode": mode}
    return Normalized(net, net.pretrained_cfg["mean"], net.pretrained_cfg["std"], resize)


def require_imagenet_head(model: Normalized, name: str, timm_model: str) -> None:
    """The ImageNet-1k validation labels need a 1000-class head: a model with another one
    (e.g. an ImageNet-21k tag) would be scored against the wrong classes."""
    from dds.data.datasets import NUM_CLASSES

    if model.net.num_classes != NUM_CLASSES:
        raise ValueError(
            f"classifiers.{name}: {timm_model} predicts {model.net.num_classes} classes; the "
            f"ImageNet-1k validation labels need a head with {NUM_CLASSES}"
        )


def describe(model: Normalized, source=None) -> dict:
    """The record of a pretrained classifier: where its weights came from (`source`, a file, or
    timm's pretrained tag), its size and its preprocessing."""
    cfg = model.net.pretrained_cfg
    return {
        "source": source or f"timm pretrained ({cfg.get('hf_hub_id') or cfg.get('url')})",
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": model.resize["size"],
        "interpolation": model.resize["mode"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
    }

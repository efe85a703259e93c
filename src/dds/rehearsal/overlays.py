"""The rehearsal's overlays: each preset kept whole, its data and checkpoints replaced by
stand-ins (dds.rehearsal.standins) and its scale shrunk to what a CPU runs in minutes."""

from pathlib import Path

import yaml

import dds
from dds.io import sha256_file
from dds.rehearsal import standins

REPO = Path(dds.__file__).resolve().parents[2]
PRESETS = ("cifar10-paper", "imagenet-paper")
SIZES = ("smallest", "default")
# the overlay's scale at each size: evaluation images per class, training images per CIFAR-10
# batch file (five of them), epsilons, sigmas, blur noise levels, images certified, certification n
SCALE = {
    "cifar10-paper": {
        "smallest": dict(per_class=1, train=10, epsilons=[0.1], sigmas=[0.25], noise=[0.0, 0.25], certify=2, n=16),
        "default": dict(
            per_class=1,
            train=10,
            epsilons=[0.02, 0.1],
            sigmas=[0.25, 0.5],
            noise=[0.0, 0.25],
            certify=2,
            n=16,
            calibrate=True,  # the official checkpoint's UNet calibrated for a classifier
        ),
    },
    "imagenet-paper": {
        "smallest": dict(per_class=1, epsilons=[0.1], sigmas=[0.25], noise=[0.0, 0.25], certify=2, n=16),
        "default": dict(per_class=2, epsilons=[0.03, 0.1], sigmas=[0.25, 0.5], noise=[0.0, 0.25], certify=2, n=16),
    },
}
# ImageNet: a few synsets (class indices), a CoAtNet of timm smaller than the preset's, and the
# guided-diffusion UNet at reduced width, its architecture given as the official flags
IMAGENET_CLASSES = [0, 1, 207, 980]
SMALL_COATNET = "coatnet_rmlp_nano_rw_224.sw_in1k"
REDUCED_WIDTH = {"num_channels": 32, "num_head_channels": 32}


def preset_config(preset: str) -> dict:
    return yaml.safe_load((REPO / "presets" / f"{preset}.yaml").read_text())


def _common_overlay(preset: str, scale: dict, device: str) -> dict:
    config = preset_config(preset)
    classes = 10 if preset == "cifar10-paper" else len(IMAGENET_CLASSES)
    eval_size = classes * scale["per_class"]
    attack = {**config["attacks"]["pgd"], "epsilons": scale["epsilons"]}
    return {
        "device": device,
        "attacks": {"pgd": attack},
        "sigmas": scale["sigmas"],
        "certify": {**config["certify"], "num_images": scale["certify"], "n0": 8, "n": scale["n"], "batch_size": 32},
        "blur": {**config["blur"], "noise_levels": scale["noise"]},
        "report": {
            **config["report"],
            "reference": {**config["report"]["reference"], "table": str(REPO / config["report"]["reference"]["table"])},
        },
        "dataset": {**config["dataset"], "eval_size": eval_size, "shard_size": eval_size},
    }


def cifar10_overlay(standin: Path, url: str, scale: dict, device: str) -> dict:
    """CIFAR-10 of a few hundred images, the full improved-diffusion architecture downloaded by
    fetch_denoiser from `url` (sha256 pinned), both ResNet-50s trained for one epoch at 32 -> 224."""
    from dds.diffusion.checkpoints import CHECKPOINTS

    config = preset_config("cifar10-paper")
    overlay = _common_overlay("cifar10-paper", scale, device)
    standins.write_cifar10(standin, per_batch=scale["train"], test_size=10 * (scale["per_class"] + 1), seed=0)
    overlay["dataset"].update(root=str(standin), md5=standins.cifar10_md5(standin))
    checkpoint = "cifar10_uncond_50M_500K"
    standins.write_openai_checkpoint(standin / f"{checkpoint}.pt", CHECKPOINTS[checkpoint], seed=0)
    overlay["denoisers"] = {
        "improved-diffusion": {
            **config["denoisers"]["improved-diffusion"],
            "url": f"{url}/{checkpoint}.pt",
            "sha256": sha256_file(standin / f"{checkpoint}.pt"),
        }
    }
    if scale.get("calibrate"):
        overlay["denoisers"]["improved-diffusion-cal"] = {
            "kind": "calibrated",
            "base": "improved-diffusion",
            "classifier": next(iter(config["classifiers"])),
            **{"steps": 2, "batch_size": 2, "draws": 2},
        }
    # one epoch, in batches that fit a CPU's memory beside the other job (ResNet-50 at 224)
    overlay["classifiers"] = {
        name: {**spec, "epochs": 1, "batch_size": 16} for name, spec in config["classifiers"].items()
    }
    return overlay


def imagenet_overlay(standin: Path, url: str, scale: dict, device: str) -> dict:
    """A flat ImageNet validation folder of a few synsets with the devkit's labels, the
    guided-diffusion UNet at reduced width given by `path:` with its flags, and a small CoAtNet
    of timm with random weights from a `weights:` file."""
    from dds.diffusion.flags import denoiser_checkpoint

    config = preset_config("imagenet-paper")
    overlay = _common_overlay("imagenet-paper", scale, device)
    truth = standins.write_imagenet_val(
        standin / "val", standin / "devkit", IMAGENET_CLASSES, per_class=scale["per_class"] + 1, seed=0
    )
    overlay["dataset"].update(root=str(standin / "val"), labels_file=str(truth), require_all_classes=False)
    denoiser = {**config["denoisers"]["guided-diffusion"], **REDUCED_WIDTH, "path": str(standin / "guided-reduced.pt")}
    # the architecture the workflow will resolve from these flags, so the file fits it by construction
    standins.write_openai_checkpoint(standin / "guided-reduced.pt", denoiser_checkpoint(denoiser), seed=0)
    overlay["denoisers"] = {"guided-diffusion": denoiser}
    weights = standin / f"{SMALL_COATNET}.safetensors"
    standins.write_timm_weights(weights, SMALL_COATNET, seed=0)
    overlay["classifiers"] = {
        name: {**spec, "model": SMALL_COATNET, "weights": str(weights)} for name, spec in config["classifiers"].items()
    }
    return overlay


OVERLAYS = {"cifar10-paper": cifar10_overlay, "imagenet-paper": imagenet_overlay}

"""The denoiser rules: train a DDPM here, or fetch and verify an improved- or guided-diffusion
checkpoint."""

import dataclasses
import json
import logging

import torch

from dds.device import resolve_device
from dds.io import (
    read_images,
    write_json,
)
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def train_denoiser(*, train, weights, metrics, name: str, spec: dict, seed: int, device: str) -> None:
    """Train DDPM `name` on the training images."""
    from dds.diffusion import ddpm

    train_set = read_images(train)
    torch.manual_seed(derive_seed(seed, "denoiser-init", name))
    unet = ddpm.build_unet(train_set.images.shape[-1], train_set.images.shape[1], spec)
    scheduler = ddpm.build_scheduler(spec)
    record = ddpm.train_ddpm(
        unet,
        scheduler,
        train_set,
        spec["steps"],
        spec["batch_size"],
        spec["lr"],
        derive_seed(seed, "denoiser", name),
        resolve_device(device),
    )
    ddpm.save_ddpm(unet, scheduler, weights)
    write_json(record, metrics)


def fetch_denoiser(*, checkpoint, url: str, sha256: str | None) -> None:
    """Download an official checkpoint, verified against `sha256` when the config gives one."""
    from dds.fetch import download

    actual = download(url, checkpoint, sha256)
    if sha256 is None:
        log.warning(
            "the config gives no sha256 for %s: this download's is %s. Add `sha256: %s` to the denoiser's "
            "config to pin it; until then every use is checked against the sha256 recorded at first use",
            url,
            actual,
            actual,
        )


def openai_denoiser(*, checkpoint, weights, metrics, name: str, spec: dict) -> None:
    """Check an improved- or guided-diffusion checkpoint once (sha256, strict load) and write
    the reference to it that every later stage loads (see load_denoiser): its path, sha256 and
    the architecture and diffusion resolved from the config's flags, so that loading needs no
    config. Without a sha256 in the config, the file's sha256 now is recorded and verified
    from then on."""
    from dds.diffusion.flags import checkpoint_flags, denoiser_checkpoint
    from dds.diffusion.official import load_openai_checkpoint
    from dds.io import save_tensors, sha256_file

    official = denoiser_checkpoint(spec)
    digest = spec["sha256"] or sha256_file(checkpoint)
    eps_model, alphas_cumprod = load_openai_checkpoint(checkpoint, official, spec["sha256"])
    resolved = json.dumps(dataclasses.asdict(official))
    save_tensors({}, weights, {"kind": "openai", "spec": resolved, "path": str(checkpoint), "sha256": digest})
    record = {
        "kind": "openai",
        "checkpoint": official.name,
        "path": str(checkpoint),
        "sha256": digest,
        "sha256_from": "config" if spec["sha256"] else "first use",
        "url": official.url,
        "parameters": sum(p.numel() for p in eps_model.parameters()),
        "schedule": official.schedule,
        "num_timesteps": len(alphas_cumprod),
        "image_size": official.unet.image_size,
        "flags": checkpoint_flags(official),
    }
    log.info(
        "%s: %s verified (sha256 %s, from the %s), %d parameters",
        name,
        checkpoint,
        digest,
        record["sha256_from"],
        record["parameters"],
    )
    write_json(record, metrics)

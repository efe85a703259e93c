"""The denoiser rules: train a DDPM here, or fetch and verify an official checkpoint."""

import logging

import torch

from dds.device import resolve_device
from dds.io import (
    read_images,
    write_json,
)
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def train_denoiser(name: str, spec: dict, seed: int, device: str, train_path, weights_path, metrics_path) -> None:
    from dds.diffusion import ddpm as diffusion

    train = read_images(train_path)
    torch.manual_seed(derive_seed(seed, "denoiser-init", name))
    unet = diffusion.build_unet(train.images.shape[-1], train.images.shape[1], spec)
    scheduler = diffusion.build_scheduler(spec)
    metrics = diffusion.train_ddpm(unet, scheduler, train, spec["steps"], spec["batch_size"], spec["lr"],
                                   derive_seed(seed, "denoiser", name), resolve_device(device))
    diffusion.save_ddpm(unet, scheduler, weights_path)
    write_json(metrics, metrics_path)


def fetch_checkpoint(url: str, sha256: str | None, out_path) -> None:
    """Download an official checkpoint, verified against `sha256` when the config gives one."""
    from dds.fetch import download

    actual = download(url, out_path, sha256)
    if sha256 is None:
        log.warning("the config gives no sha256 for %s: this download's is %s. Add `sha256: %s` to the denoiser's "
                    "config to pin it; until then every use is checked against the sha256 recorded at first use",
                    url, actual, actual)


def openai_denoiser(name: str, spec: dict, checkpoint_path, weights_path, metrics_path) -> None:
    """Check an official checkpoint once (sha256, strict load) and write the reference to it
    that every later stage loads (see load_denoiser): its path, name and sha256. Without a
    sha256 in the config, the file's sha256 now is recorded and verified from then on."""
    from dds.diffusion import openai_unet
    from dds.io import save_tensors, sha256_file

    checkpoint = openai_unet.checkpoint_spec(spec["checkpoint"])
    digest = spec["sha256"] or sha256_file(checkpoint_path)
    eps_model, alphas_cumprod = openai_unet.load_openai_checkpoint(checkpoint_path, checkpoint, spec["sha256"])
    save_tensors({}, weights_path, {"kind": "openai", "checkpoint": checkpoint.name, "path": str(checkpoint_path),
                                    "sha256": digest})
    metrics = {"kind": "openai", "checkpoint": checkpoint.name, "path": str(checkpoint_path), "sha256": digest,
               "sha256_from": "config" if spec["sha256"] else "first use", "url": spec["url"],
               "parameters": sum(p.numel() for p in eps_model.parameters()), "schedule": checkpoint.schedule,
               "num_timesteps": len(alphas_cumprod), "image_size": checkpoint.unet.image_size}
    log.info("%s: %s verified (sha256 %s, from the %s), %d parameters", name, checkpoint_path, digest,
             metrics["sha256_from"], metrics["parameters"])
    write_json(metrics, metrics_path)


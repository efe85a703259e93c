"""The denoiser rules: train a DDPM here, fetch and verify an improved- or guided-diffusion
checkpoint, or calibrate a denoiser for a classifier."""

import dataclasses
import json
import logging

import torch

from dds.device import resolve_device
from dds.io import fingerprint, read_images, sha256_file, write_json
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


def train_denoiser(*, train, weights, metrics, name: str, spec: dict, seed: int, device: str) -> None:
    """Train DDPM `name` on the training images."""
    from dds.diffusion import ddpm
    from dds.diffusion.one_shot import sigma_timestep

    train_set = read_images(train)
    torch.manual_seed(derive_seed(seed, "denoiser-init", name))
    unet = ddpm.build_unet(train_set.images.shape[-1], train_set.images.shape[1], spec)
    scheduler = ddpm.build_scheduler(spec)
    max_sigma = spec["max_sigma"]
    max_timestep = None if max_sigma is None else sigma_timestep(scheduler.alphas_cumprod, max_sigma)
    record = ddpm.train_ddpm(
        unet,
        scheduler,
        train_set,
        spec["steps"],
        spec["batch_size"],
        spec["lr"],
        derive_seed(seed, "denoiser", name),
        resolve_device(device),
        max_timestep,
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
    from dds.io import save_tensors

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


def calibrate_denoiser(
    *,
    train,
    base,
    classifier,
    weights,
    metrics,
    checkpoint,
    name: str,
    spec: dict,
    sigmas: list,
    seed: int,
    device: str,
) -> None:
    """Calibrate the base denoiser `base` (a file of any kind) for the frozen classifier
    `classifier` on the training images (dds.diffusion.calibration), and write the calibrated
    denoiser with its own weights and its provenance (see dds.diffusion.loading.save_calibrated).
    `checkpoint` keeps a checkpoint every spec["checkpoint_every"] steps (removed once the weights
    are written), from which a rerun after an interruption continues."""
    from dds.diffusion import calibration
    from dds.diffusion.loading import load_eps_model, save_calibrated
    from dds.models import training
    from dds.models.classifiers import load_classifier

    dev = resolve_device(device)
    train_set = read_images(train)
    eps_model, alphas_cumprod, architecture = load_eps_model(base, dev)
    model = load_classifier(classifier, dev)
    settings = calibration.Settings.from_spec(spec)
    provenance = {
        "base": spec["base"],
        "base_sha256": sha256_file(base),
        "classifier": spec["classifier"],
        "classifier_sha256": sha256_file(classifier),
        "train_sha256": fingerprint(train_set),
    }
    record = calibration.calibrate(
        eps_model,
        alphas_cumprod,
        model,
        train_set,
        settings,
        sigmas,
        derive_seed(seed, "calibrate-denoiser", name),
        dev,
        checkpoint_dir=checkpoint,
        identity=provenance,
    )
    calibration_record = {"settings": record["settings"], "sigmas": record["sigmas"], "seed": seed}
    save_calibrated(
        eps_model,
        alphas_cumprod,
        architecture,
        {**provenance, "calibration": calibration_record, "steps": record["steps"]},
        weights,
    )
    write_json({"kind": "calibrated", **provenance, **record}, metrics)
    training.discard_checkpoint(checkpoint)


def multistep_denoiser(*, base, weights, metrics, name: str, spec: dict) -> None:
    """Write the file of a multistep denoiser: a reference to its base's file (checked by sha256
    at every load) with the sampler, its steps and eta (dds.diffusion.loading.save_multistep)."""
    from dds.diffusion.loading import save_multistep

    settings = {k: spec[k] for k in ("sampler", "steps", "eta")}
    save_multistep(base, settings, weights)
    log.info("%s: %s, %d steps, eta %g, with the network of %s", name, *settings.values(), base)
    write_json({"kind": "multistep", "base": spec["base"], "base_sha256": sha256_file(base), **settings}, metrics)

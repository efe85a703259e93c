"""Loading a denoiser file: a DDPM trained here, the reference to an improved- or
guided-diffusion checkpoint, a denoiser calibrated for a classifier (dds.diffusion.calibration),
which holds its own weights, or a multi-step denoiser (dds.diffusion.multistep): a reference to
another denoiser file, whose network runs the reverse chain."""

import json
import logging
from pathlib import Path

import torch
from torch import nn

from dds.io import DataFileError, load_tensors, save_tensors, sha256_file

log = logging.getLogger(__name__)

# a calibrated file's network: its base's architecture, and the metadata key that rebuilds it
# (the UNet config save_ddpm stores, or the spec openai_denoiser resolved)
ARCHITECTURES = {"ddpm": "unet_config", "openai": "spec"}


def load_eps_model(denoiser_path, device) -> tuple[nn.Module, torch.Tensor, dict]:
    """(epsilon network in eval mode, alphas_cumprod, architecture) from a denoiser file of any
    kind, the network differentiable and not prepared for inference. `architecture` is the
    metadata a calibrated file of this network stores to rebuild it (see save_calibrated); a
    multi-step file gives its base's."""
    return _eps_model(denoiser_path, *load_tensors(denoiser_path), device)


def _eps_model(denoiser_path, tensors: dict, meta: dict, device) -> tuple[nn.Module, torch.Tensor, dict]:
    kind = meta.get("kind")
    if kind == "multistep":
        return load_eps_model(_multistep_base(denoiser_path, meta), device)
    if kind == "openai":
        from dds.diffusion.official import load_openai_checkpoint

        if "spec" not in meta:
            raise DataFileError(
                f"{denoiser_path}: written by an earlier dds, without the checkpoint's architecture; "
                "make it again: snakemake --forcerun openai_denoiser"
            )
        spec = json.loads(meta["spec"])  # the architecture and diffusion openai_denoiser resolved
        eps_model, alphas_cumprod = load_openai_checkpoint(meta["path"], spec, meta["sha256"], device)
        architecture = "openai"
    elif kind == "calibrated":
        eps_model, alphas_cumprod = _load_calibrated(denoiser_path, tensors, meta)
        architecture = meta["architecture"]
    else:
        from dds.diffusion.ddpm import load_ddpm  # diffusers takes seconds to import: only for DDPMs

        eps_model, alphas_cumprod = load_ddpm(denoiser_path, device)
        architecture = "ddpm"
    key = ARCHITECTURES[architecture]
    return eps_model.to(device).eval(), alphas_cumprod, {"architecture": architecture, key: meta[key]}


def _load_calibrated(path, tensors: dict, meta: dict) -> tuple[nn.Module, torch.Tensor]:
    """A calibrated file's network, rebuilt from its metadata and loaded strictly."""
    architecture = meta.get("architecture")
    if ARCHITECTURES.get(architecture) not in meta or "alphas_cumprod" not in tensors:
        raise DataFileError(
            f"{path}: a calibrated denoiser without its architecture metadata or alphas_cumprod tensor; "
            "make it again: snakemake --forcerun calibrate_denoiser"
        )
    state = {k[len("unet.") :]: v for k, v in tensors.items() if k.startswith("unet.")}
    unexpected = sorted(set(tensors) - {"alphas_cumprod"} - {f"unet.{k}" for k in state})
    if unexpected:
        raise DataFileError(f"{path}: unexpected tensors {unexpected} in a calibrated denoiser (strict load)")
    if architecture == "openai":
        from dds.diffusion.checkpoints import checkpoint_spec
        from dds.diffusion.official import openai_eps

        return openai_eps(state, checkpoint_spec(json.loads(meta["spec"])), path), tensors["alphas_cumprod"]
    from dds.diffusion.ddpm import load_ddpm  # the file has save_ddpm's layout: unet.* weights, unet_config

    return load_ddpm(path)


def save_calibrated(eps_model: nn.Module, alphas_cumprod: torch.Tensor, architecture: dict, provenance: dict, path):
    """A calibrated denoiser file: the whole epsilon network's weights (unet.*) and alphas_cumprod,
    with kind "calibrated", the `architecture` load_eps_model gave for its base, and `provenance`
    (values that are not strings stored as JSON) in the metadata."""
    tensors = {**eps_model.state_dict(), "alphas_cumprod": alphas_cumprod.to(torch.float64)}
    provenance = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in provenance.items()}
    save_tensors(tensors, path, {**provenance, **architecture, "kind": "calibrated"})


def save_multistep(base_path, spec: dict, path) -> None:
    """A multi-step denoiser file: no tensors; kind "multistep", the base denoiser file and its
    sha256, and the spec's sampler, steps and eta (as JSON) in the metadata."""
    from dds.diffusion.multistep import check_settings

    try:
        check_settings(spec["sampler"], spec["steps"], spec["eta"])
    except ValueError as err:
        raise ValueError(f"denoiser {Path(path).stem!r} ({path}): {err}") from None
    settings = {key: json.dumps(spec[key]) for key in ("steps", "eta")}
    meta = {"kind": "multistep", "base": str(base_path), "base_sha256": sha256_file(base_path), **settings}
    save_tensors({}, path, {**meta, "sampler": spec["sampler"]})


def _multistep_base(path, meta: dict) -> str:
    """The base file of a multi-step denoiser, checked to be the one it was made from."""
    base = meta.get("base")
    if base is None or not Path(base).is_file():
        problem = "is missing"
    elif sha256_file(base) != meta.get("base_sha256"):
        problem = "has changed since this file was made"
    else:
        return base
    raise DataFileError(
        f"{path}: its base denoiser {base} {problem}; make it again: snakemake --forcerun multistep_denoiser"
    )


def load_denoiser(denoiser_path, sigma: float, device, run=None):
    """The denoiser at `sigma` from a denoiser file: the one-shot denoiser of a DDPM trained here,
    of the reference to an improved- or guided-diffusion checkpoint (whose sha256 is verified at
    every load) or of a calibrated denoiser, or a multi-step denoiser. `run`
    (dds.evaluation.inference.Inference) prepares its network for inference; without it the
    denoiser stays differentiable (the adaptive attack)."""
    return load_denoisers(denoiser_path, [sigma], device, run)[sigma]


def load_denoisers(denoiser_path, sigmas, device, run=None) -> dict:
    """load_denoiser at each of `sigmas`, by sigma: one network, read and prepared once."""
    from dds.diffusion.one_shot import OneShotDenoiser

    tensors, meta = load_tensors(denoiser_path)
    eps_model, alphas_cumprod, _ = _eps_model(denoiser_path, tensors, meta, device)
    multistep = meta.get("kind") == "multistep"
    if multistep:
        from dds.diffusion.multistep import MultiStepDenoiser, with_variance

        eps_model = with_variance(eps_model)
        settings = meta["sampler"], json.loads(meta["steps"]), json.loads(meta["eta"])
    if run is not None:
        eps_model = run.prepare(eps_model)
    denoisers = {}
    for sigma in sigmas:
        if not multistep:
            denoiser = OneShotDenoiser(eps_model, alphas_cumprod, sigma)
        else:
            try:
                denoiser = MultiStepDenoiser(eps_model, alphas_cumprod, sigma, *settings)
            except ValueError as err:
                raise ValueError(f"{denoiser_path}: {err}") from None
            log.info("%s: %s, reverse steps at timesteps %s", denoiser_path, denoiser.settings(), denoiser.timesteps)
        log.info("sigma=%g: timestep %d of %d (abar %.5f)", sigma, denoiser.t, len(alphas_cumprod), denoiser.abar)
        denoisers[sigma] = denoiser
    return denoisers

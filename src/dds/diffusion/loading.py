"""Loading a denoiser file: a DDPM trained here or the reference to an improved- or
guided-diffusion checkpoint."""

import json
import logging

log = logging.getLogger(__name__)


def load_denoiser(denoiser_path, sigma: float, device, run=None):
    """The one-shot denoiser at `sigma` from a denoiser file: a DDPM trained here, or the
    reference to an improved- or guided-diffusion checkpoint (whose sha256 is verified at every load). `run`
    (dds.evaluation.inference.Inference) prepares its network for inference; without it the denoiser
    stays differentiable (the adaptive attack)."""
    from dds.diffusion.one_shot import OneShotDenoiser
    from dds.io import load_tensors

    _, meta = load_tensors(denoiser_path)
    if meta.get("kind") == "openai":
        from dds.diffusion.official import load_openai_checkpoint

        if "spec" not in meta:
            from dds.io import DataFileError

            raise DataFileError(
                f"{denoiser_path}: written by an earlier dds, without the checkpoint's architecture; "
                "make it again: snakemake --forcerun openai_denoiser"
            )
        spec = json.loads(meta["spec"])  # the architecture and diffusion openai_denoiser resolved
        eps_model, alphas_cumprod = load_openai_checkpoint(meta["path"], spec, meta["sha256"], device)
    else:
        from dds.diffusion.ddpm import load_ddpm  # diffusers takes seconds to import: only for DDPMs

        eps_model, alphas_cumprod = load_ddpm(denoiser_path, device)
    denoiser = OneShotDenoiser(eps_model if run is None else run.prepare(eps_model), alphas_cumprod, sigma)
    log.info("sigma=%g: timestep %d of %d (abar %.5f)", sigma, denoiser.t, len(alphas_cumprod), denoiser.abar)
    return denoiser

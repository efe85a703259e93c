"""An improved- or guided-diffusion checkpoint file, official or one's own: verified (sha256),
unpickled weights-only, and loaded strictly into dds's OpenAI UNet."""

import pickle
from pathlib import Path

import torch
from torch import nn

from dds.diffusion.checkpoints import OpenAICheckpoint, checkpoint_spec
from dds.diffusion.openai_unet import OpenAIEps, UNetModel
from dds.io import DataFileError, sha256_file


def read_state_dict(path) -> dict:
    """A plain state dict from a .pt file, unpickled with weights_only=True: a file that would
    run code or build other Python objects on loading is refused, never executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise DataFileError(
            f"{path}: refused to load: the file holds pickled Python objects other than tensors, which a "
            f"weights-only load does not run ({str(err).splitlines()[0]}). The official checkpoints are plain "
            "state dicts: this file is not one, or has been tampered with; download it again"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataFileError(f"{path}: not a readable PyTorch checkpoint ({err}); download it again") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise DataFileError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def source(spec: OpenAICheckpoint) -> str:
    """Where the checkpoint comes from, for messages: ' (get it from URL)', or nothing for a
    model of one's own given by path only."""
    return f" (get it from {spec.url})" if spec.url else ""


def check_state_dict(model: nn.Module, state: dict, path, spec: OpenAICheckpoint) -> None:
    """Raise a DataFileError naming every missing key, unexpected key and wrong shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {list(state[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return

    def listing(title, items, limit=10):
        more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
        return f"\n  {title} ({len(items)}): {', '.join(items[:limit])}{more}" if items else ""

    raise DataFileError(
        f"{path}: the weights do not fit the {spec.name} UNet (strict load)"
        + listing("missing keys", missing)
        + listing("unexpected keys", unexpected)
        + listing("wrong shapes", shapes)
        + f"\nEither the file is not {spec.name}{source(spec)} or the denoiser's flags do not describe it "
        "(check learn_sigma, num_channels, channel_mult, num_res_blocks, attention_resolutions, "
        "use_scale_shift_norm, resblock_updown)"
    )


def load_openai_checkpoint(
    path, spec, expected_sha256: str | None = None, device="cpu"
) -> tuple[OpenAIEps, torch.Tensor]:
    """(epsilon network in eval mode, alphas_cumprod in float64) for a checkpoint file and its
    spec (checkpoint_spec: a name, a dict or an OpenAICheckpoint): sha256 verified when given,
    unpickled weights-only, loaded strictly."""
    spec = checkpoint_spec(spec)
    path = Path(path)
    if not path.is_file():
        checksum = f" (sha256 {expected_sha256})" if expected_sha256 else ""
        fetch = (
            f"download {spec.url}{checksum} to this path"
            if spec.url
            else f"put the {spec.name} checkpoint{checksum} there"
        )
        raise DataFileError(f"{path}: file not found; {fetch}, or point the config to a copy you already have")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise DataFileError(
                f"{path}: sha256 mismatch: expected {expected_sha256.lower()}, got {actual}. The file is incomplete, "
                f"corrupt or another checkpoint: replace it with {spec.name}{source(spec)} "
                "(or correct the expected sha256 if you meant to use this file)"
            )
    return openai_eps(read_state_dict(path), spec, path).to(device).eval(), spec.alphas_cumprod()


def openai_eps(state: dict, spec: OpenAICheckpoint, path) -> OpenAIEps:
    """The epsilon network of `spec` with the UNet weights `state` (read from `path`, named in
    errors), loaded strictly; on the CPU, in train mode."""
    model = UNetModel(spec.unet)
    check_state_dict(model, state, path, spec)
    model.load_state_dict(state, strict=True)
    return OpenAIEps(model, spec.num_timesteps, spec.rescale_timesteps)

"""What long classifier training needs besides the update step: the standard CIFAR
augmentation, mixed precision on CUDA, and a checkpoint after every epoch from which an
interrupted run resumes exactly (weights, optimizer, schedule, gradient scaler and every
random generator), stored as safetensors plus JSON: nothing is pickled."""

import contextlib
import json
import logging
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dds.io import DataFileError, atomic_path, load_tensors, save_tensors

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with `padding` pixels of zero padding, then a horizontal flip with
    probability 1/2, drawn per image from a CPU generator (so that the draws, and a resumed
    run, do not depend on the device)."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]


def adamw(parameters, **options) -> torch.optim.AdamW:
    """AdamW with its fused kernel, the update of every model dds trains: the default per-tensor
    loop takes a ResNet-18's update on one CPU thread 74 ms against the fused 9.5 ms, 40% of its
    whole step at 16x16 (docs/benchmarks.md, "Training"). The same algorithm; only the rounding
    of the last bits differs."""
    return torch.optim.AdamW(parameters, fused=True, **options)


def mixed_precision(device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """(autocast dtype, gradient scaler): bfloat16 on CUDA where supported, else float16 with
    a scaler (its range needs one); full precision (None, None) on the CPU."""
    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _rng_tensors(generators: dict) -> dict:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    tensors.update({f"rng.{name}": g.get_state() for name, g in generators.items()})
    return tensors


def save_checkpoint(
    folder,
    epoch: int,
    identity: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler,
    generators: dict,
) -> None:
    """Everything needed to continue after `epoch`: one safetensors file per epoch (weights,
    optimizer tensors, random states), then `state.json` naming it, written last, so that an
    interruption at any moment leaves the previous checkpoint intact."""
    folder = Path(folder)
    optim = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    extra = {}
    for pid, state in optim["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                extra.setdefault(str(pid), {})[name] = value
    tensors.update(_rng_tensors(generators))
    weights = f"epoch{epoch}.safetensors"
    save_tensors(tensors, folder / weights, {"epoch": str(epoch)})
    state = {
        "epoch": epoch,
        "weights": weights,
        "identity": identity,
        "param_groups": optim["param_groups"],
        "optimizer_extra": extra,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    with atomic_path(folder / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    for old in folder.glob("epoch*.safetensors"):
        if old.name != weights:
            old.unlink()


def load_checkpoint(
    folder, identity: dict, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler, generators: dict
) -> int:
    """Restore the last checkpoint in `folder` into the given objects and return its epoch;
    0 (nothing restored) when there is none, or when it belongs to another run (another
    spec, seed or training set, recorded in `identity`), which is then discarded."""
    folder = Path(folder)
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        return 0
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        stale = state["identity"] != json.loads(json.dumps(identity))
    except (json.JSONDecodeError, KeyError) as err:
        raise DataFileError(
            f"{state_path}: not a dds training checkpoint ({err}); delete {folder} to start over"
        ) from None
    if stale:
        log.info("%s: checkpoint of another run (spec, seed or training set changed): starting over", folder)
        discard_checkpoint(folder)
        return 0
    tensors, _ = load_tensors(folder / state["weights"])

    def part(prefix):
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(part("model."), strict=True)
    per_param = {}
    for key, value in part("optimizer.").items():
        pid, name = key.split(".", 1)
        per_param.setdefault(int(pid), {})[name] = value
    for pid, values in state["optimizer_extra"].items():
        per_param.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng.{name}"])
    log.info("resumed from %s after epoch %d", folder, state["epoch"])
    return int(state["epoch"])


def discard_checkpoint(folder) -> None:
    shutil.rmtree(folder, ignore_errors=True)

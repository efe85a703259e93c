"""Device selection: `auto` picks CUDA when present."""

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config device={name!r} but CUDA is not available here; use device: auto or cpu")
    return device

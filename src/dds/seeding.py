"""Seeds derived from (config seed, stage, wildcards) by a stable hash, so that adding a
sigma or an epsilon never changes the random draws of any other job."""

import hashlib

import torch


def derive_seed(seed: int, stage: str, *parts) -> int:
    """A 63-bit seed that depends only on its arguments (not on Python's hash salt)."""
    text = "\x1f".join([str(int(seed)), stage, *(repr(p) if isinstance(p, float) else str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, stage: str, *parts) -> torch.Generator:
    """A CPU generator seeded with derive_seed(seed, stage, *parts)."""
    return torch.Generator().manual_seed(derive_seed(seed, stage, *parts))


def image_normal(idx, shape, seed: int, stage: str, *parts) -> torch.Tensor:
    """Standard normal noise of `shape`, one draw per image, seeded by (seed, stage, *parts,
    image index): an image's draw never depends on its batch, shard or neighbours."""
    if len(idx) == 0:
        return torch.empty((0, *shape))
    return torch.stack([torch.randn(tuple(shape), generator=generator(seed, stage, *parts, int(i))) for i in idx])

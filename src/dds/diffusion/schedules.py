"""The noise schedules of the official OpenAI diffusion checkpoints, exactly as they were
trained, in float64.

- linear (Ho et al. 2020, extended to any number of steps T): betas evenly spaced from
  1e-4 * 1000/T to 0.02 * 1000/T;
- cosine (Nichol & Dhariwal 2021): abar(t) = f(t/T) / f(0) with
  f(u) = cos(((u + s) / (1 + s)) * pi/2)^2, s = 0.008, discretised as
  beta_i = 1 - f((i+1)/T) / f(i/T) capped at 0.999 (the cap only acts on the last steps).

Index t of `alphas_cumprod` is the network's timestep t: abar[t] = prod_{i<=t} (1 - beta_i).
"""

import math

import torch

COSINE_S = 0.008
MAX_BETA = 0.999


def linear_betas(num_timesteps: int) -> torch.Tensor:
    scale = 1000 / num_timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)


def cosine_betas(num_timesteps: int, s: float = COSINE_S, max_beta: float = MAX_BETA) -> torch.Tensor:
    u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def betas(name: str, num_timesteps: int) -> torch.Tensor:
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}")
    if num_timesteps < 2:
        raise ValueError(f"a noise schedule needs at least 2 timesteps, got {num_timesteps}")
    return SCHEDULES[name](num_timesteps)


def alphas_cumprod(name: str, num_timesteps: int) -> torch.Tensor:
    """abar[t] for t = 0..T-1, float64."""
    return torch.cumprod(1 - betas(name, num_timesteps), dim=0)

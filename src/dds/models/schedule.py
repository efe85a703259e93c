"""The learning-rate schedule shared by classifier and DDPM training."""

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5% of steps, then cosine decay towards zero; valid for
    any number of steps, including one."""
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        return min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / total_steps)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

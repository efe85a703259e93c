"""A clamp whose gradient can pass straight through (docs/science.md §1.6).

A plain clamp has zero gradient on every saturated value, so an attack differentiating through
the defence sees no gradient on the pixels the denoiser or the classifier's resize clips: a
masked gradient. Its straight-through form computes the same clamp and passes the gradient on
unchanged (backward as the identity), for the adaptive attack only.
"""

import torch


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def clamp(x: torch.Tensor, lo: float, hi: float, straight_through: bool = False) -> torch.Tensor:
    """`x.clamp(lo, hi)`, bit for bit; with `straight_through` its gradient is the identity's."""
    return _StraightThrough.apply(x, lo, hi) if straight_through else x.clamp(lo, hi)

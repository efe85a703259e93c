"""The noise schedules of the official checkpoints against their closed forms."""

import math

import pytest
import torch

from dds.diffusion.schedules import alphas_cumprod, betas

S = 0.008


def cosine_f(u: float) -> float:
    return math.cos((u + S) / (1 + S) * math.pi / 2) ** 2


def test_cosine_matches_closed_form():
    T = 4000
    abar = alphas_cumprod("cosine", T)
    beta = betas("cosine", T)
    assert abar.dtype == torch.float64 and abar.shape == (T,)
    assert beta.dtype == torch.float64
    # the 0.999 cap acts on the very last step only: before it abar[t] = f((t+1)/T) / f(0)
    assert beta[-1].item() == 0.999 and (beta[:-1] < 0.999).all()
    for t in [0, 1, 10, 500, 1000, 2000, 3000, 3900, T - 2]:
        expected = cosine_f((t + 1) / T) / cosine_f(0)
        assert abar[t].item() == pytest.approx(expected, rel=1e-12), t
    assert abar[-1].item() == pytest.approx(abar[-2].item() * (1 - 0.999), rel=1e-12)
    assert (abar[1:] < abar[:-1]).all()


def test_linear_matches_closed_form():
    T = 1000
    beta = betas("linear", T)
    assert beta[0].item() == pytest.approx(1e-4, rel=1e-12)
    assert beta[-1].item() == pytest.approx(0.02, rel=1e-12)
    step = (0.02 - 1e-4) / (T - 1)
    assert torch.allclose(beta[1:] - beta[:-1], torch.full((T - 1,), step, dtype=torch.float64), rtol=1e-9, atol=0)
    abar = alphas_cumprod("linear", T)
    assert abar.dtype == torch.float64 and abar.shape == (T,)
    log_abar = 0.0
    for t in range(T):
        log_abar += math.log1p(-(1e-4 + t * step))
        if t in (0, 1, 99, 500, 998, 999):
            assert abar[t].item() == pytest.approx(math.exp(log_abar), rel=1e-11), t


def test_linear_scales_with_the_number_of_steps():
    beta = betas("linear", 4000)
    assert beta[0].item() == pytest.approx(1e-4 / 4, rel=1e-12)
    assert beta[-1].item() == pytest.approx(0.02 / 4, rel=1e-12)


def test_bad_schedule_names_the_choices():
    with pytest.raises(ValueError, match="cosine.*linear"):
        betas("quadratic", 1000)
    with pytest.raises(ValueError, match="at least 2"):
        betas("linear", 1)

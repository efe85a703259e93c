"""One-shot diffusion denoising (docs/science.md §1.1): timestep selection, the denoiser with an
oracle epsilon network, gradients through a real UNet, and the per-image noise draws."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from dds.diffusion.one_shot import OneShotDenoiser, image_noise, sigma_timestep
from dds.diffusion.schedules import alphas_cumprod

SIGMAS = [0.12, 0.25, 0.5, 1.0]


def linear_abar(T=1000):
    """alphas_cumprod of the DDPM linear schedule, computed here in float64."""
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def cosine_abar(T=4000, s=0.008):
    """alphas_cumprod of the improved-diffusion cosine schedule (betas capped at 0.999)."""

    def f(t):
        return math.cos(((t / T) + s) / (1 + s) * math.pi / 2) ** 2

    betas = np.array([min(1 - (f(i + 1) / f(0)) / (f(i) / f(0)), 0.999) for i in range(T)])
    return np.cumprod(1.0 - betas)


SCHEDULES = {"linear": linear_abar, "cosine": cosine_abar}


def brute_force_t(abar, sigma):
    for t, a in enumerate(abar):
        if math.sqrt((1 - a) / a) >= 2 * sigma:
            return t
    raise AssertionError("no timestep reaches sigma")


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("sigma", SIGMAS)
def test_sigma_timestep_matches_formula(schedule, sigma):
    abar = SCHEDULES[schedule]()
    ratio = np.sqrt((1 - abar) / abar)
    t = sigma_timestep(torch.from_numpy(abar), sigma)
    assert isinstance(t, int)
    assert 0 < t < len(abar)
    assert ratio[t] >= 2 * sigma
    assert ratio[t - 1] < 2 * sigma
    assert t == brute_force_t(abar, sigma)


@pytest.mark.parametrize("sigma, expected", [(0.25, 1158), (0.5, 1984), (1.0, 2809)])
def test_sigma_timestep_on_the_official_cosine_schedule(sigma, expected):
    """The timesteps of the CIFAR-10 checkpoint's 4000-step cosine schedule. Closed form:
    abar[t] = f((t+1)/T) / f(0), f(u) = cos((u + s) / (1 + s) pi/2)^2, s = 0.008, and t* is the
    first t with abar[t] <= 1 / (1 + 4 sigma^2): t* = ceil(T u*) - 1 with
    u* = (2/pi)(1+s) arccos(sqrt(f(0) / (1 + 4 sigma^2))) - s."""
    abar = alphas_cumprod("cosine", 4000)
    t = sigma_timestep(abar, sigma)
    assert t == expected
    ratio = torch.sqrt((1 - abar) / abar)
    assert ratio[t] >= 2 * sigma > ratio[t - 1]


def test_sigma_timestep_grows_with_sigma():
    abar = torch.from_numpy(linear_abar())
    ts = [sigma_timestep(abar, s) for s in SIGMAS]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)


def test_diffusers_linear_schedule_is_the_closed_form():
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    np.testing.assert_allclose(sched.alphas_cumprod.double().numpy(), linear_abar(), rtol=1e-5, atol=0)
    # on the float32 values diffusers stores, the selection is still the formula's
    abar32 = sched.alphas_cumprod.double().numpy()
    for sigma in SIGMAS:
        assert sigma_timestep(sched.alphas_cumprod, sigma) == brute_force_t(abar32, sigma)


def test_diffusers_cosine_schedule_is_the_closed_form():
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    np.testing.assert_allclose(sched.alphas_cumprod.double().numpy(), cosine_abar(T=1000), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_sigma_beyond_schedule_names_largest_sigma(schedule):
    abar = SCHEDULES[schedule]()
    largest = float(np.sqrt((1 - abar[-1]) / abar[-1]) / 2)
    assert sigma_timestep(torch.from_numpy(abar), largest * 0.999) == len(abar) - 1
    with pytest.raises(ValueError, match="beyond") as info:
        sigma_timestep(torch.from_numpy(abar), largest * 1.01)
    assert f"{largest:.4g}" in str(info.value)


class Oracle(nn.Module):
    """The true DDPM noise of x_t = sqrt(abar) (x' + 2 sigma n), computed from x_t knowing the
    clean image x; checks it is asked at the expected timestep. With learned_sigma it returns
    2C channels, the last C being junk that must be ignored."""

    def __init__(self, x, abar, expected_t, learned_sigma=False):
        super().__init__()
        self.x, self.abar, self.expected_t = x, abar, expected_t
        self.learned_sigma = learned_sigma
        self.calls = 0

    def forward(self, x_t, t):
        assert t.dtype == torch.long and t.shape == (len(x_t),)
        assert (t == self.expected_t).all(), f"oracle fed t={t.tolist()}, expected {self.expected_t}"
        a = float(self.abar[int(t[0])])
        eps = (x_t.double() - math.sqrt(a) * (2 * self.x.double() - 1)) / math.sqrt(1 - a)
        eps = eps.to(x_t.dtype)
        self.calls += 1
        if self.learned_sigma:
            return torch.cat([eps, torch.full_like(eps, 1e3)], dim=1)
        return eps


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("learned_sigma", [False, True])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_oracle_network_recovers_clean_image(sigma, learned_sigma, channels):
    abar = linear_abar()
    expected_t = brute_force_t(abar, sigma)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((4, channels, 8, 8), generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    oracle = Oracle(x, abar, expected_t, learned_sigma)
    denoiser = OneShotDenoiser(oracle, torch.from_numpy(abar), sigma)
    assert denoiser.t == expected_t
    out = denoiser(x, noise)
    assert oracle.calls == 1
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-5, rtol=0)


def test_noisy_input_has_exactly_sigma_of_noise():
    abar = linear_abar()
    sigma = 0.5
    denoiser = OneShotDenoiser(nn.Identity(), torch.from_numpy(abar), sigma)
    assert denoiser.abar == pytest.approx(abar[denoiser.t], rel=1e-12)
    gen = torch.Generator().manual_seed(2)
    x, n = torch.rand((3, 1, 8, 8), generator=gen), torch.randn((3, 1, 8, 8), generator=gen)
    x_t = denoiser.noisy(x, n)
    assert torch.allclose(x_t / math.sqrt(abar[denoiser.t]) - (2 * x - 1), 2 * sigma * n, atol=1e-5)


class Zeros(nn.Module):
    def forward(self, x_t, t):
        return torch.zeros_like(x_t)


def test_output_is_clamped_to_unit_interval():
    abar = torch.from_numpy(linear_abar())
    sigma = 1.0
    denoiser = OneShotDenoiser(Zeros(), abar, sigma)
    gen = torch.Generator().manual_seed(3)
    x, n = torch.rand((4, 1, 8, 8), generator=gen), torch.randn((4, 1, 8, 8), generator=gen)
    out = denoiser(x, n)
    assert out.min() >= 0 and out.max() <= 1
    # with eps = 0 the estimate is x' + 2 sigma n: many pixels leave [-1, 1] and are clamped
    assert (out == 0).any() and (out == 1).any()
    expected = ((2 * x - 1 + 2 * sigma * n).clamp(-1, 1) + 1) / 2
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("size", [(16, 16), (12, 10)])
def test_output_is_resized(size):
    abar = linear_abar()
    sigma = 0.25
    gen = torch.Generator().manual_seed(4)
    x, n = torch.rand((2, 1, 8, 8), generator=gen), torch.randn((2, 1, 8, 8), generator=gen)
    denoiser = OneShotDenoiser(
        Oracle(x, abar, brute_force_t(abar, sigma)), torch.from_numpy(abar), sigma, output_size=size
    )
    out = denoiser(x, n)
    assert out.shape == (2, 1, *size)
    expected = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected, atol=1e-5)


def test_gradients_flow_through_real_unet(tiny_unet):
    from dds.diffusion.ddpm import DiffusersEps

    abar = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").alphas_cumprod
    denoiser = OneShotDenoiser(DiffusersEps(tiny_unet), abar, 0.25)
    gen = torch.Generator().manual_seed(5)
    x = torch.rand((2, 1, 8, 8), generator=gen).requires_grad_(True)
    n = torch.randn((2, 1, 8, 8), generator=gen)
    weights = torch.randn((2, 1, 8, 8), generator=gen)
    out = denoiser(x, n)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    (out * weights).sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


IDX = torch.tensor([7, 3, 100, 42, 0, 1799, 5, 6])
SHAPE = (1, 4, 4)


def test_image_noise_is_independent_of_batching_and_order():
    full = image_noise(IDX, SHAPE, seed=11, sigma=0.25)
    assert full.shape == (len(IDX), *SHAPE)
    split = torch.cat([image_noise(IDX[:3], SHAPE, 11, 0.25), image_noise(IDX[3:], SHAPE, 11, 0.25)])
    assert torch.equal(split, full)
    perm = torch.tensor([5, 2, 7, 0, 1, 6, 4, 3])
    assert torch.equal(image_noise(IDX[perm], SHAPE, 11, 0.25), full[perm])
    assert torch.equal(image_noise(IDX[4:5], SHAPE, 11, 0.25), full[4:5])
    # distinct images get distinct draws
    assert all(not torch.equal(full[i], full[j]) for i in range(len(IDX)) for j in range(i))


def test_image_noise_depends_on_seed_and_sigma():
    base = image_noise(IDX, SHAPE, 11, 0.25)
    for other in (image_noise(IDX, SHAPE, 12, 0.25), image_noise(IDX, SHAPE, 11, 0.5)):
        assert all(not torch.equal(base[i], other[i]) for i in range(len(IDX)))


def test_image_noise_sigma_type_does_not_matter():
    """sigma 1 from a YAML list and 1.0 from a path wildcard draw the same noise."""
    a = image_noise(IDX, SHAPE, 0, 1.0)
    assert torch.equal(a, image_noise(IDX, SHAPE, 0, 1))
    assert torch.equal(a, image_noise(IDX, SHAPE, 0, np.float64(1.0)))


def test_image_noise_is_standard_normal_and_handles_empty():
    z = image_noise(torch.arange(20), (1, 32, 32), 0, 0.5)
    assert abs(z.mean().item()) < 0.05
    assert abs(z.std().item() - 1) < 0.05
    empty = image_noise(torch.tensor([], dtype=torch.long), SHAPE, 0, 0.5)
    assert empty.shape == (0, *SHAPE)

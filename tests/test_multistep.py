"""Multi-step purification (dds.diffusion.multistep; docs/science.md §1.7): the timesteps, an oracle
network's chain returning the clean image, K = 1 as the one-shot denoiser bit for bit, each
sampler's step against its formula and diffusers, checkpointed gradients equal to plain ones,
straight-through clamps at every step, per-image noise, and the denoiser file."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from conftest import tamper
from dds.diffusion.checkpoints import OpenAICheckpoint, UNetConfig
from dds.diffusion.ddpm import DiffusersEps, build_scheduler, save_ddpm
from dds.diffusion.loading import load_denoiser, load_eps_model, save_multistep
from dds.diffusion.multistep import AllChannels, MultiStepDenoiser, reverse_timesteps, with_variance
from dds.diffusion.one_shot import OneShotDenoiser, denoise_images, image_noise
from dds.diffusion.openai_unet import UNetModel
from dds.evaluation.inference import Inference
from dds.io import DataFileError, ImageSet, load_tensors, save_tensors, sha256_file
from test_denoise import Oracle, Zeros, linear_abar

ABAR = torch.from_numpy(linear_abar())
SAMPLINGS = [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)]


class TrueNoise(nn.Module):
    """The true noise of x_t at any timestep, knowing the clean image x."""

    def __init__(self, x, abar):
        super().__init__()
        self.x, self.abar = x, abar

    def forward(self, x_t, t):
        a = float(self.abar[int(t[0])])
        return ((x_t.double() - math.sqrt(a) * (2 * self.x.double() - 1)) / math.sqrt(1 - a)).to(x_t.dtype)


class Fixed(nn.Module):
    """A network whose output does not depend on its input: `out` at every timestep."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x_t, t):
        return self.out


def draws(denoiser, count=4, channels=1, seed=0, dtype=torch.float32):
    """(8x8 images in [0,1], the standard normal noise `denoiser` takes for them), seeded."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((count, channels, 8, 8), generator=gen, dtype=dtype)
    return x, torch.randn((count, *denoiser.noise_shape(x.shape[1:])), generator=gen, dtype=dtype)


def test_reverse_timesteps():
    assert reverse_timesteps(100, 1) == [100]
    assert reverse_timesteps(100, 4) == [100, 75, 50, 25]
    assert reverse_timesteps(10, 3) == [10, 6, 3]
    assert reverse_timesteps(7, 7) == [7, 6, 5, 4, 3, 2, 1]
    assert reverse_timesteps(0, 1) == [0]
    for t_star in range(1, 60):
        for steps in range(1, t_star + 1):
            taus = reverse_timesteps(t_star, steps)
            assert taus[0] == t_star and len(taus) == steps and all(np.diff(taus) < 0) and taus[-1] >= 1
    for t_star, steps in [(10, 0), (10, 11), (0, 2)]:
        with pytest.raises(ValueError, match=rf"steps={steps}.*t\*={t_star}.*fewer steps or a larger sigma"):
            reverse_timesteps(t_star, steps)


@pytest.mark.parametrize("sampler, eta", SAMPLINGS)
@pytest.mark.parametrize("steps", [1, 2, 5, 20])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [0.12, 0.5, 1.0])
def test_oracle_chain_returns_the_clean_image(sigma, channels, steps, sampler, eta):
    """With the true noise every x0 estimate is exact, whatever noise the steps add."""
    denoiser = MultiStepDenoiser(None, ABAR, sigma, sampler, steps, eta)
    x, noise = draws(denoiser, channels=channels)
    denoiser.eps_model = TrueNoise(x, ABAR)
    assert torch.allclose(denoiser(x, noise), x, atol=1e-5, rtol=0)


def test_noise_shape_and_settings():
    one_shot = OneShotDenoiser(None, ABAR, 0.5)
    assert one_shot.noise_shape(torch.Size([3, 8, 8])) == (3, 8, 8)
    assert one_shot.settings() == {"sampler": "one-shot", "reverse_steps": 1, "eta": None, "t_star": one_shot.t}
    for sampler, eta, steps, channels in [("ddim", 0.0, 5, 3), ("ddim", 0.5, 5, 15), ("ddpm", 0.0, 5, 15)]:
        denoiser = MultiStepDenoiser(None, ABAR, 0.5, sampler, steps, eta)
        assert denoiser.noise_shape((3, 8, 8)) == (channels, 8, 8)
        expected = {"sampler": sampler, "reverse_steps": 5, "eta": None if sampler == "ddpm" else eta}
        assert denoiser.settings() == {**expected, "t_star": one_shot.t}
        assert denoiser.timesteps == reverse_timesteps(one_shot.t, 5)
    assert MultiStepDenoiser(None, ABAR, 0.5, "ddpm", 1).noise_shape((3, 8, 8)) == (3, 8, 8)


@pytest.mark.parametrize(
    "sampler, steps, eta, match",
    [("euler", 2, 0.0, "sampler 'euler'"), ("ddim", 2, -0.1, "eta=-0.1"), ("ddim", 2, 1.5, "eta=1.5"),
     ("ddpm", 2, 0.5, "ddim sampler"), ("ddim", 0, 0.0, "steps=0"), ("ddim", 1000, 0.0, "larger sigma")],
)  # fmt: skip
def test_settings_no_chain_runs_with_are_refused(sampler, steps, eta, match):
    with pytest.raises(ValueError, match=match):
        MultiStepDenoiser(None, ABAR, 0.5, sampler, steps, eta)


@pytest.mark.parametrize("sampler, eta", SAMPLINGS)
@pytest.mark.parametrize("network", ["unet", "learned-variance oracle"])
def test_one_step_is_the_one_shot_denoiser_exactly(tiny_unet, network, sampler, eta):
    one_shot = OneShotDenoiser(DiffusersEps(tiny_unet), ABAR, 0.5, output_size=(12, 12))
    multi = MultiStepDenoiser(one_shot.eps_model, ABAR, 0.5, sampler, 1, eta, output_size=(12, 12))
    x, noise = draws(multi)
    assert noise.shape == x.shape
    if network != "unet":
        one_shot.eps_model = multi.eps_model = Oracle(x, ABAR, one_shot.t, learned_sigma=True)
    outs, grads = [], []
    for denoiser in (one_shot, multi):
        denoiser.straight_through = True
        v = x.clone().requires_grad_(True)
        outs.append(denoiser(v, noise))
        grads.append(torch.autograd.grad(outs[-1].square().sum(), v)[0])
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])


class Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x_t, t):
        self.calls += 1
        return self.model(x_t, t)


@pytest.mark.parametrize("sampler, eta", SAMPLINGS)
def test_checkpointed_gradient_equals_plain_autograd(tiny_unet, sampler, eta):
    eps_model = Counting(DiffusersEps(tiny_unet.double()))
    denoiser = MultiStepDenoiser(eps_model, ABAR, 0.5, sampler, 5, eta)
    x, noise = draws(denoiser, count=2, dtype=torch.float64)
    weights = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = list(tiny_unet.parameters())
    grads = {}
    for checkpointing in (True, False):
        denoiser.checkpointing, eps_model.calls = checkpointing, 0
        v = x.clone().requires_grad_(True)
        grads[checkpointing] = torch.autograd.grad((denoiser(v, noise) * weights).sum(), [v, *params])
        assert eps_model.calls == (9 if checkpointing else 5)  # recomputed once: each step but the last
    diff = max((a - b).abs().max().item() for a, b in zip(grads[True], grads[False], strict=True))
    print("DIFF", diff)
    assert diff <= 1e-10 and grads[True][0].abs().max() > 0


def step_by_hand(a, prev, x_t, eps, variance=None, z=1.0):
    """One DDPM ancestral step from timestep abar a to abar prev in numpy: (mean, std)."""
    x0 = np.clip((x_t - np.sqrt(1 - a) * eps) / np.sqrt(a), -1, 1)
    alpha = a / prev
    beta = 1 - alpha
    mean = (np.sqrt(prev) * beta * x0 + np.sqrt(alpha) * (1 - prev) * x_t) / (1 - a)
    log_v = np.log(beta * (1 - prev) / (1 - a))
    if variance is None:
        return mean, np.exp(log_v / 2)
    frac = (variance + 1) / 2
    return mean, np.exp((frac * np.log(beta) + (1 - frac) * log_v) / 2)


@pytest.mark.parametrize("learned", [False, True])
def test_ddpm_step_by_hand(learned):
    gen = torch.Generator().manual_seed(2)
    x_t, eps, var_out = (torch.randn((2, 3, 4, 4), generator=gen, dtype=torch.float64) for _ in range(3))
    var_out = var_out.clamp(-1, 1)
    denoiser = MultiStepDenoiser(Fixed(torch.cat([eps, var_out], 1) if learned else eps), ABAR, 0.5, "ddpm", 4)
    a, prev = (float(ABAR[t]) for t in denoiser.timesteps[:2])
    mean, std = step_by_hand(a, prev, x_t.numpy(), eps.numpy(), var_out.numpy() if learned else None)
    zeros, ones = torch.zeros_like(x_t), torch.ones_like(x_t)
    np.testing.assert_allclose(denoiser.step(x_t, 0, zeros).numpy(), mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose((denoiser.step(x_t, 0, ones) - denoiser.step(x_t, 0, zeros)).numpy(), std, atol=1e-12)
    assert np.ptp(std) > 0.01 if learned else np.ptp(std) == 0


@pytest.mark.parametrize("variance_type", ["fixed_small", "learned_range"])
def test_ddpm_step_matches_diffusers(variance_type):
    """diffusers' DDPMScheduler over our timesteps (custom timesteps: the respaced pairs)."""
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type=variance_type)
    gen = torch.Generator().manual_seed(3)
    x_t, out = torch.randn((2, 1, 8, 8), generator=gen), torch.randn((2, 2, 8, 8), generator=gen).clamp(-1, 1)
    out = out if variance_type == "learned_range" else out[:, :1]
    denoiser = MultiStepDenoiser(Fixed(out), scheduler.alphas_cumprod, 0.5, "ddpm", 4)
    scheduler.set_timesteps(timesteps=denoiser.timesteps)
    for i, t in enumerate(denoiser.timesteps[:-1]):
        expected = scheduler.step(out, t, x_t, generator=torch.Generator().manual_seed(i)).prev_sample
        z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(i))
        assert torch.allclose(denoiser.step(x_t, i, z), expected, atol=1e-5, rtol=0)


def test_ddim_with_eta_one_is_the_ddpm_posterior():
    """DDIM at eta 1 adds the posterior's std of noise, and its mean is the posterior mean."""
    gen = torch.Generator().manual_seed(4)
    x_t, eps, z = (torch.randn((2, 1, 8, 8), generator=gen, dtype=torch.float64) for _ in range(3))
    ddim, ddpm = (MultiStepDenoiser(Fixed(eps), ABAR, 0.5, s, 5, eta) for s, eta in [("ddim", 1.0), ("ddpm", 0.0)])
    for i in range(4):
        assert torch.allclose(ddim.step(x_t, i, z), ddpm.step(x_t, i, z), atol=1e-12, rtol=0)
    half = MultiStepDenoiser(Fixed(eps), ABAR, 0.5, "ddim", 5, 0.5)
    scale = half.step(x_t, 0, torch.ones_like(x_t)) - half.step(x_t, 0, torch.zeros_like(x_t))
    a, prev = half.abars[:2]
    expected = 0.5 * math.sqrt((1 - prev) / (1 - a) * (1 - a / prev))
    assert torch.allclose(scale, torch.full_like(scale, expected), atol=1e-12, rtol=0)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_straight_through_reaches_every_step(sampler):
    """With eps = 0 the chain without clamps is x + sigma n + noise: gradient 1 everywhere. The
    straight-through clamps give exactly that; plain clamps zero it on saturated pixels."""
    denoiser = MultiStepDenoiser(Zeros(), ABAR, 1.0, sampler, 4)
    x, noise = draws(denoiser, seed=5)
    grads = {}
    for flag in (False, True):
        denoiser.straight_through = flag
        v = x.clone().requires_grad_(True)
        out = denoiser(v, noise)
        grads[flag] = torch.autograd.grad(out.sum(), v)[0]
    saturated = (out == 0) | (out == 1)
    assert saturated.any() and (grads[False][saturated] == 0).all()
    assert torch.allclose(grads[True], torch.ones_like(x), atol=1e-5)


class Pointwise(nn.Module):
    """A network of no batch effects (pixel by pixel), with a learned-variance output."""

    def forward(self, x_t, t):
        return torch.cat([torch.tanh(x_t) * t.view(-1, 1, 1, 1) / 1000, torch.sin(3 * x_t)], 1)


@pytest.mark.parametrize("network", ["pointwise", "unet"])
def test_reverse_noise_is_seeded_per_image(tiny_unet, network):
    """The whole noise, reverse steps' included, is one draw per image (dds.seeding): a batch of
    4 gives what the images one by one give, exactly where the network has no batch effects
    (the UNet's float32 convolutions do, by a few ulp)."""
    eps_model = Pointwise() if network == "pointwise" else DiffusersEps(tiny_unet)
    denoiser = MultiStepDenoiser(eps_model, ABAR, 0.5, "ddpm", 3)
    x, _ = draws(denoiser)
    data = ImageSet(torch.tensor([9, 2, 40, 7]), torch.zeros(4, dtype=torch.long), x)
    batched, single = (denoise_images(denoiser, data, 0, size, "cpu") for size in (4, 1))
    assert torch.equal(batched, single) if network == "pointwise" else torch.allclose(batched, single, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(batched, denoiser(x, image_noise(data.idx, (3, 8, 8), 0, 0.5)))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_chain_starts_from_the_one_shot_draw(shape):
    """torch's CPU normal sampler fills 16 values at a time: when C*H*W is a multiple of 16 (every
    dataset here) the first C channels of the longer draw are the one-shot denoiser's draw."""
    idx = torch.tensor([3, 11])
    multi = MultiStepDenoiser(None, ABAR, 0.5, "ddpm", 4)
    assert torch.equal(
        image_noise(idx, multi.noise_shape(shape), 0, 0.5)[:, : shape[0]], image_noise(idx, shape, 0, 0.5)
    )


@pytest.fixture
def ddpm_file(tmp_path, tiny_unet):
    scheduler = build_scheduler({"num_train_timesteps": 100, "beta_schedule": "linear"})
    save_ddpm(tiny_unet, scheduler, tmp_path / "base.safetensors")
    return tmp_path / "base.safetensors", DiffusersEps(tiny_unet), scheduler.alphas_cumprod


def test_multistep_file_round_trip(ddpm_file, tmp_path):
    base, eps_model, abar = ddpm_file
    path = tmp_path / "ms.safetensors"
    save_multistep(base, {"kind": "multistep", "base": "ddpm", "sampler": "ddpm", "steps": 3, "eta": 0.0}, path)
    tensors, meta = load_tensors(path)
    assert tensors == {} and meta == {
        "kind": "multistep", "base": str(base), "base_sha256": sha256_file(base), "sampler": "ddpm", "steps": "3",
        "eta": "0.0",
    }  # fmt: skip
    direct = MultiStepDenoiser(eps_model, abar, 0.5, "ddpm", 3)
    x, noise = draws(direct, count=2)
    with torch.no_grad():
        expected = direct(x, noise)
        for run in (None, Inference(torch.device("cpu"))):
            loaded = load_denoiser(path, 0.5, "cpu", run)
            assert isinstance(loaded, MultiStepDenoiser) and loaded.settings() == direct.settings()
            assert torch.equal(loaded(x, noise), expected)
    assert load_eps_model(path, "cpu")[2] == load_eps_model(base, "cpu")[2]
    save_multistep(base, {"sampler": "ddim", "steps": 40, "eta": 0.0}, tmp_path / "far.safetensors")
    with pytest.raises(ValueError, match=r"far\.safetensors.*steps=40.*larger sigma"):
        load_denoiser(tmp_path / "far.safetensors", 0.1, "cpu")


@pytest.mark.parametrize(
    "spec, match",
    [({"sampler": "euler", "steps": 2, "eta": 0.0}, "sampler 'euler'"),
     ({"sampler": "ddpm", "steps": 2, "eta": 0.3}, "eta=0.3"),
     ({"sampler": "ddim", "steps": 0, "eta": 0.0}, "steps=0")],
)  # fmt: skip
def test_multistep_spec_is_checked(ddpm_file, tmp_path, spec, match):
    with pytest.raises(ValueError, match=rf"denoiser 'purify'.*{match}"):
        save_multistep(ddpm_file[0], spec, tmp_path / "purify.safetensors")
    assert not (tmp_path / "purify.safetensors").exists()


@pytest.mark.parametrize("change", ["tamper", "delete"])
def test_multistep_file_refuses_a_changed_base(ddpm_file, tmp_path, change):
    base = ddpm_file[0]
    path = tmp_path / "ms.safetensors"
    save_multistep(base, {"sampler": "ddim", "steps": 2, "eta": 0.0}, path)
    if change == "tamper":
        tamper(base, lambda tensors: tensors["alphas_cumprod"].mul_(0.99))
    else:
        base.unlink()
    for load in (lambda: load_denoiser(path, 0.5, "cpu"), lambda: load_eps_model(path, "cpu")):
        with pytest.raises(DataFileError, match="forcerun multistep_denoiser") as err:
            load()
        assert str(path) in str(err.value) and str(base) in str(err.value)


def test_openai_base_keeps_its_learned_variance(tmp_path):
    unet = UNetConfig(8, 32, 1, (1, 2), (), in_channels=1, learn_sigma=True)
    spec = OpenAICheckpoint("tiny", None, unet, "linear", 100, rescale_timesteps=True)
    torch.manual_seed(2)
    torch.save(UNetModel(unet).state_dict(), tmp_path / "tiny.pt")
    meta = {"spec": json.dumps(dataclasses.asdict(spec)), "path": str(tmp_path / "tiny.pt")}
    base = tmp_path / "openai.safetensors"
    save_tensors({}, base, {**meta, "kind": "openai", "sha256": sha256_file(tmp_path / "tiny.pt")})
    eps_model, abar, _ = load_eps_model(base, "cpu")
    full = with_variance(eps_model)
    assert isinstance(full, AllChannels) and with_variance(DiffusersEps(None)).unet is None
    save_multistep(base, {"sampler": "ddpm", "steps": 1, "eta": 0.0}, tmp_path / "one.safetensors")
    save_multistep(base, {"sampler": "ddpm", "steps": 3, "eta": 0.0}, tmp_path / "three.safetensors")
    learned = MultiStepDenoiser(full, abar, 0.5, "ddpm", 3)
    x, noise = draws(learned, count=2)
    with torch.no_grad():
        assert full(x, torch.tensor([5, 9])).shape == (2, 2, 8, 8)
        one = load_denoiser(tmp_path / "one.safetensors", 0.5, "cpu")
        assert torch.equal(one(x, noise[:, :1]), load_denoiser(base, 0.5, "cpu")(x, noise[:, :1]))
        out = load_denoiser(tmp_path / "three.safetensors", 0.5, "cpu")(x, noise)
        assert torch.equal(out, learned(x, noise))
        assert not torch.allclose(out, MultiStepDenoiser(eps_model, abar, 0.5, "ddpm", 3)(x, noise))

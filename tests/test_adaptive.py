"""The adaptive attack of dds.attacks.adaptive: its PGD against torchattacks', the EOT gradient through
the denoiser, gradient accumulation against one big batch, and the attack's guarantees."""

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from dds.attacks.adaptive import Defended, adaptive_attack, eot_gradient, pgd, random_start
from dds.diffusion.ddpm import DiffusersEps, build_scheduler
from dds.diffusion.one_shot import OneShotDenoiser


@pytest.fixture(scope="module")
def batch(digits8):
    pos = torch.arange(0, 60, 10)
    return digits8.idx[pos].clone(), digits8.images[pos].clone(), digits8.labels[pos].clone()


@pytest.fixture
def defended(tiny_unet, model):
    abar = build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}).alphas_cumprod
    return Defended(OneShotDenoiser(DiffusersEps(tiny_unet), abar, 0.25), model).eval()


def ce_gradient(model, y):
    def grad_fn(x, step):
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(x), y), x)[0]

    return grad_fn


@pytest.mark.parametrize("norm,cls,eps", [("linf", torchattacks.PGD, 0.1), ("l2", torchattacks.PGDL2, 0.5)])
def test_pgd_matches_torchattacks(model, batch, norm, cls, eps):
    _, x, y = batch
    reference = cls(model, eps=eps, alpha=eps / 4, steps=5, random_start=False)(x, y)
    ours = pgd(ce_gradient(model, y), x, eps, eps / 4, 5, norm)
    assert torch.allclose(ours, reference, atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_random_start_inside_ball_and_seeded_per_image(batch, norm, eps):
    idx, x, _ = batch
    start = random_start(idx, x.shape[1:], eps, norm, seed=3)
    size = start.flatten(1).abs().amax(1) if norm == "linf" else start.flatten(1).norm(dim=1)
    assert (size <= eps + 1e-6).all() and (size > 0).all()
    assert torch.equal(random_start(idx[2:4], x.shape[1:], eps, norm, seed=3), start[2:4])
    assert not torch.equal(random_start(idx, x.shape[1:], eps, norm, seed=4), start)


def noise_of(x, seed=0):
    return lambda k: torch.randn(x.shape, generator=torch.Generator().manual_seed(seed * 1000 + k))


@pytest.mark.parametrize("target", ["single", "smoothed"])
def test_eot_gradient_accumulated_equals_one_batch(defended, batch, target):
    _, x, y = batch
    whole = eot_gradient(defended, x, y, noise_of(x), draws=6, draws_per_pass=6, target=target)
    for per_pass in (1, 4):
        chunked = eot_gradient(defended, x, y, noise_of(x), draws=6, draws_per_pass=per_pass, target=target)
        assert torch.allclose(chunked, whole, rtol=1e-4, atol=1e-7), per_pass


def test_eot_gradient_matches_its_formula(defended, batch):
    """single: gradient of mean_k CE; smoothed: of -log mean_k softmax_y, written out directly."""
    _, x, y = batch
    noise = [noise_of(x)(k) for k in range(3)]
    xs = x.clone().requires_grad_(True)
    logits = [defended(xs, n) for n in noise]
    single = sum(F.cross_entropy(z, y, reduction="sum") for z in logits) / 3
    p = torch.stack([F.softmax(z, 1)[torch.arange(len(y)), y] for z in logits]).mean(0)
    smoothed = -torch.log(p).sum()
    g_single, g_smoothed = torch.autograd.grad(single, xs, retain_graph=True)[0], torch.autograd.grad(smoothed, xs)[0]
    assert torch.allclose(eot_gradient(defended, x, y, noise_of(x), 3, 2, "single"), g_single, rtol=1e-4, atol=1e-7)
    assert torch.allclose(eot_gradient(defended, x, y, noise_of(x), 3, 2, "smoothed"), g_smoothed, rtol=1e-4, atol=1e-7)


def test_gradient_reaches_input_through_denoiser(defended, batch):
    _, x, y = batch
    grad = eot_gradient(defended, x, y, noise_of(x), 2, 2, "single")
    assert torch.isfinite(grad).all()
    assert (grad.flatten(1).abs().sum(1) > 0).all()  # every image gets a gradient
    # the denoiser is on the path: not the bare classifier's gradient
    bare = ce_gradient(defended.classifier, y)(x, 0) * len(y)
    assert not torch.allclose(grad, bare, rtol=1e-2)


def test_eot_gradient_rejects_unknown_target(defended, batch):
    _, x, y = batch
    with pytest.raises(ValueError, match="unknown adaptive attack target 'soft'.*single, smoothed"):
        eot_gradient(defended, x, y, noise_of(x), 2, 2, "soft")


SPEC = {"method": "pgd_linf", "steps": 3, "step_size": 2.5, "step_mode": "relative", "random_start": False}


@pytest.mark.parametrize("target", ["single", "smoothed"])
def test_adaptive_attack_keeps_bounds_and_is_identity_at_zero(defended, batch, target):
    idx, x, y = batch
    assert torch.equal(adaptive_attack(defended, SPEC, 0.0, idx, x, y, target, 2, 2, 0, 4, "cpu"), x)
    adv = adaptive_attack(defended, SPEC, 0.1, idx, x, y, target, 2, 1, 0, 4, "cpu")
    linf = (adv - x).abs().flatten(1).amax(1)
    assert (linf <= 0.1 + 1e-6).all() and (linf > 0).all()
    assert adv.min() >= 0 and adv.max() <= 1


def test_adaptive_attack_does_not_depend_on_batch_size(defended, batch):
    idx, x, y = batch
    spec = {**SPEC, "random_start": True}
    a = adaptive_attack(defended, spec, 0.1, idx, x, y, "single", 2, 2, 0, 6, "cpu")
    b = adaptive_attack(defended, spec, 0.1, idx, x, y, "single", 2, 1, 0, 4, "cpu")
    assert torch.allclose(a, b, atol=1e-6)


def test_adaptive_attack_needs_pgd(defended, batch):
    idx, x, y = batch
    with pytest.raises(ValueError, match="runs PGD"):
        adaptive_attack(defended, {"method": "fgsm"}, 0.1, idx, x, y, "single", 2, 2, 0, 4, "cpu")

"""PGD L-inf through dds.attacks (DESIGN.md 1.6) on a small random classifier."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dds.attacks import attack, attack_seed, perturbation_norms, reach, step_size
from dds.classifiers import build_classifier

ABSOLUTE = {"method": "pgd_linf", "steps": 5, "step_size": 2 / 255}
RELATIVE = {"method": "pgd_linf", "steps": 5, "step_size_factor": 2.5}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_classifier("resnet18", {}, 1, 10, [0.3], [0.3]).eval()


@pytest.fixture(scope="module")
def batch(digits8):
    pos = torch.arange(0, 80, 10)  # 8 images of several classes
    return digits8.images[pos].clone(), digits8.labels[pos].clone()


def run(model, spec, eps, x, y, seed=0, batch_size=4):
    return attack(model, spec, eps, x, y, batch_size, seed, "cpu")


@pytest.mark.parametrize("spec", [ABSOLUTE, RELATIVE], ids=["absolute", "relative"])
@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_pgd_stays_in_ball_and_box(model, batch, spec, eps):
    x, y = batch
    x_before = x.clone()
    adv = run(model, spec, eps, x, y)
    assert torch.equal(x, x_before)  # the input is not modified
    assert adv.shape == x.shape and adv.dtype == x.dtype
    linf = (adv - x).abs().flatten(1).amax(1)
    assert (linf <= eps + 1e-6).all()
    assert (linf <= reach(spec, eps) + 1e-6).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert (linf > 0).all()  # every image was moved


def test_pgd_reaches_epsilon_when_steps_allow(model, batch):
    x, y = batch
    eps = 0.1
    assert reach(RELATIVE, eps) == pytest.approx(eps)
    linf = (run(model, RELATIVE, eps, x, y) - x).abs().flatten(1).amax(1)
    assert torch.allclose(linf, torch.full_like(linf, eps), atol=1e-6)


def test_attack_leaves_model_in_eval_mode(model, batch):
    x, y = batch
    expected = run(model, RELATIVE, 0.1, x, y)
    model.train()
    try:
        adv = run(model, RELATIVE, 0.1, x, y)
        assert not model.training
    finally:
        model.eval()
    assert torch.equal(adv, expected)


@pytest.mark.parametrize("spec", [ABSOLUTE, RELATIVE, dict(RELATIVE, random_start=True)],
                         ids=["absolute", "relative", "random_start"])
def test_eps_zero_is_identity(model, batch, spec):
    x, y = batch
    assert torch.equal(run(model, spec, 0.0, x, y), x)


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_raises_loss(model, batch, eps):
    x, y = batch
    adv = run(model, RELATIVE, eps, x, y)
    with torch.no_grad():
        clean_loss = F.cross_entropy(model(x), y).item()
        adv_loss = F.cross_entropy(model(adv), y).item()
    assert adv_loss > clean_loss


def test_step_modes_agree(model, batch):
    x, y = batch
    eps = 0.05
    absolute = {"method": "pgd_linf", "steps": 5, "step_size": 0.02}
    relative = {"method": "pgd_linf", "steps": 5, "step_size_factor": 2.0}
    assert step_size(absolute, eps) == step_size(relative, eps) == 0.02
    assert torch.equal(run(model, absolute, eps, x, y), run(model, relative, eps, x, y))


@pytest.mark.parametrize("spec, eps, expected_step, expected_reach", [
    (ABSOLUTE, 0.1, 2 / 255, 10 / 255),
    (ABSOLUTE, 0.02, 2 / 255, 0.02),
    (RELATIVE, 0.1, 0.05, 0.1),
    ({"method": "pgd_linf", "steps": 4, "step_size_factor": 0.5}, 0.2, 0.025, 0.1),
    ({"method": "pgd_linf", "steps": 10, "step_size": 0.001}, 0.5, 0.001, 0.01),
])
def test_step_size_and_reach(spec, eps, expected_step, expected_reach):
    assert step_size(spec, eps) == pytest.approx(expected_step, rel=1e-12)
    assert reach(spec, eps) == pytest.approx(expected_reach, rel=1e-12)


def test_random_start_reproducible(model, batch):
    x, y = batch
    spec = dict(ABSOLUTE, random_start=True)
    eps = 0.1
    a = run(model, spec, eps, x, y, seed=123)
    b = run(model, spec, eps, x, y, seed=123)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(model, spec, eps, x, y, seed=124))
    assert not torch.equal(a, run(model, ABSOLUTE, eps, x, y, seed=123))
    assert ((a - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
    assert a.min() >= 0 and a.max() <= 1


def test_unknown_method_raises(model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="fgsm"):
        run(model, {"method": "fgsm", "steps": 1, "step_size": 0.1}, 0.1, x, y)


def test_perturbation_norms_match_direct_computation():
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand((5, 1, 4, 4), generator=gen)
    adv = (clean + 0.1 * torch.randn((5, 1, 4, 4), generator=gen)).clamp(0, 1)
    linf, l2 = perturbation_norms(clean, adv)
    delta = adv.numpy().astype(np.float64) - clean.numpy().astype(np.float64)
    delta = delta.reshape(5, -1)
    assert linf.dtype == torch.float64 and l2.dtype == torch.float64
    np.testing.assert_allclose(linf.numpy(), np.abs(delta).max(1), rtol=1e-14)
    np.testing.assert_allclose(l2.numpy(), np.sqrt((delta**2).sum(1)), rtol=1e-14)


def test_perturbation_norms_hand_computed():
    clean = torch.zeros((3, 1, 2, 2))
    clean[2, 0, 0, 0] = 1e-8  # 1 - 1e-8 is 1 in float32: the difference must be taken in float64
    adv = torch.tensor([[[[0.0, 0.375], [0.5, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    linf, l2 = perturbation_norms(clean, adv)
    expected = 1.0 - float(torch.tensor(1e-8))
    assert linf.tolist() == [0.5, 0.0, expected]
    assert l2.tolist() == [0.625, 0.0, expected]


def test_attack_seed_depends_on_every_part():
    base = attack_seed(0, "resnet", "pgd", 0.1, 0)
    assert base == attack_seed(0, "resnet", "pgd", 0.1, 0)
    others = {attack_seed(1, "resnet", "pgd", 0.1, 0), attack_seed(0, "vit", "pgd", 0.1, 0),
              attack_seed(0, "resnet", "pgd2", 0.1, 0), attack_seed(0, "resnet", "pgd", 0.2, 0),
              attack_seed(0, "resnet", "pgd", 0.1, 1)}
    assert base not in others and len(others) == 5

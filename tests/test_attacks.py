"""The attacks of dds.attacks.generate (docs/science.md §1.6): PGD L-inf in detail on a small random
classifier, and every registered attack's guarantees on a small trained one."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import fit
from dds.attacks.budget import budget_warnings, reach
from dds.attacks.generate import attack, attack_seed, perturbation_norms
from dds.attacks.registry import METHODS, step_size
from dds.models.classifiers import build_classifier

ABSOLUTE = {"method": "pgd_linf", "steps": 5, "step_size": 2 / 255}
RELATIVE = {"method": "pgd_linf", "steps": 5, "step_size": 2.5, "step_mode": "relative"}


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


@pytest.mark.parametrize(
    "spec", [ABSOLUTE, RELATIVE, dict(RELATIVE, random_start=True)], ids=["absolute", "relative", "random_start"]
)
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
    relative = {"method": "pgd_linf", "steps": 5, "step_size": 2.0, "step_mode": "relative"}
    assert step_size(absolute, eps) == step_size(relative, eps) == 0.02
    assert torch.equal(run(model, absolute, eps, x, y), run(model, relative, eps, x, y))


@pytest.mark.parametrize(
    "spec, eps, expected_step, expected_reach",
    [
        (ABSOLUTE, 0.1, 2 / 255, 10 / 255),
        (ABSOLUTE, 0.02, 2 / 255, 0.02),
        (RELATIVE, 0.1, 0.05, 0.1),
        ({"method": "pgd_linf", "steps": 4, "step_size": 0.5, "step_mode": "relative"}, 0.2, 0.025, 0.1),
        ({"method": "pgd_linf", "steps": 10, "step_size": 0.001}, 0.5, 0.001, 0.01),
    ],
)
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
    with pytest.raises(ValueError, match="cw_l2.*fgsm"):
        run(model, {"method": "cw_l2"}, 0.1, x, y)


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
    others = {
        attack_seed(1, "resnet", "pgd", 0.1, 0),
        attack_seed(0, "vit", "pgd", 0.1, 0),
        attack_seed(0, "resnet", "pgd2", 0.1, 0),
        attack_seed(0, "resnet", "pgd", 0.2, 0),
        attack_seed(0, "resnet", "pgd", 0.1, 1),
    }
    assert base not in others and len(others) == 5


SPECS = {
    "pgd_linf": {"method": "pgd_linf", "steps": 5, "step_size": 2.5, "step_mode": "relative"},
    "pgd_l2": {"method": "pgd_l2", "steps": 5, "step_size": 2.5, "step_mode": "relative"},
    "fgsm": {"method": "fgsm"},
    "autoattack_linf": {"method": "autoattack_linf"},
    "autoattack_l2": {"method": "autoattack_l2"},
}
EPSILON = {"linf": 0.15, "l2": 1.0}


def test_every_method_has_a_test():
    assert set(METHODS) == set(SPECS)


@pytest.fixture(scope="module")
def trained(digits8):
    torch.manual_seed(0)
    net = build_classifier("resnet18", {}, 1, 10, [0.3], [0.3])
    fit(net, digits8.subset(100, 900), digits8.subset(0, 100), epochs=3, batch_size=64, lr=2e-3)
    return net.eval()


@pytest.mark.parametrize("method", sorted(SPECS))
def test_every_attack_keeps_its_bound_and_box_and_hurts(trained, batch, method):
    x, y = batch
    norm = METHODS[method].norm
    eps = EPSILON[norm]
    adv = run(trained, SPECS[method], eps, x, y)
    linf, l2 = perturbation_norms(x, adv)
    size = linf if norm == "linf" else l2
    assert (size <= eps + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert not trained.training
    with torch.no_grad():
        clean_correct = (trained(x).argmax(1) == y).sum()
        adv_correct = (trained(adv).argmax(1) == y).sum()
    assert clean_correct >= 6 and adv_correct < clean_correct
    assert torch.equal(run(trained, SPECS[method], 0.0, x, y), x)  # epsilon 0: the clean set


def test_budget_warnings_name_the_unreachable_epsilons():
    paper = {"method": "pgd_linf", "epsilons": [0.02, 0.05, 0.1], "steps": 5, "step_size": 2 / 255}
    relative = {"method": "pgd_linf", "epsilons": [0.5], "steps": 5, "step_size": 2.5, "step_mode": "relative"}
    lines = budget_warnings({"paper": paper, "ours": relative, "fgsm": {"method": "fgsm", "epsilons": [0.3]}})
    assert len(lines) == 2 and all("'paper'" in line for line in lines)
    assert "0.039216" in lines[0] and "epsilon 0.05" in lines[0] and "epsilon 0.1" in lines[1]

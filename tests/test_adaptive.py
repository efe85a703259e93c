"""The adaptive attack of dds.attacks.adaptive: its PGD against torchattacks', the EOT gradient through
the denoiser, gradient accumulation against one big batch, and the attack's guarantees; the
straight-through clamps (dds.clamping), the defence scored over k draws and the fixed-noise
diagnostic (dds.evaluation.adaptive), and the section's config keys."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchattacks
import yaml

from dds.attacks.adaptive import Defended, adaptive_attack, eot_gradient, pgd, random_start
from dds.clamping import clamp
from dds.config import validate
from dds.diffusion.ddpm import DiffusersEps, build_scheduler
from dds.diffusion.one_shot import OneShotDenoiser, image_noise
from dds.evaluation.adaptive import adaptive_evaluation, defended_predictions, evaluation_noise, majority
from dds.io import ImageSet
from dds.models.classifiers import build_classifier, resize_images

REPO = Path(__file__).resolve().parents[1]


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


# --- straight-through clamps (dds.clamping) ---


def test_straight_through_clamp_passes_the_gradient_of_saturated_values():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], requires_grad=True)
    for through, expected in ((False, [0, 1, 1, 1, 0]), (True, [1, 1, 1, 1, 1])):
        out = clamp(x, -1, 1, through)
        assert torch.equal(out, x.detach().clamp(-1, 1))
        assert torch.equal(torch.autograd.grad(out.sum(), x)[0], torch.tensor(expected, dtype=torch.float))


def saturated_gradient(module, x, noise=None):
    """Output and input gradient of the sum of `module`'s output over its saturated values."""
    x = x.clone().requires_grad_(True)
    out = module(x) if noise is None else module(x, noise)
    mask = (out == 0) | (out == 1)
    assert mask.any(), "the test needs saturated values"
    return out.detach(), torch.autograd.grad((out * mask).sum(), x)[0]


def test_denoiser_straight_through_unmasks_the_gradient(defended, batch):
    _, x, _ = batch
    denoiser, noise = defended.denoiser, torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    plain_out, plain = saturated_gradient(denoiser, x, noise)
    denoiser.straight_through = True
    through_out, through = saturated_gradient(denoiser, x, noise)
    assert torch.equal(plain_out, through_out)  # the forward pass is the same
    assert plain.abs().max() == 0 and through.abs().max() > 0


def test_classifier_resize_straight_through_unmasks_the_gradient(batch):
    _, x, _ = batch  # 8x8 digits with sharp edges: bicubic overshoots
    plain_out, plain = saturated_gradient(lambda v: resize_images(v, 20, "bicubic"), x)
    through_out, through = saturated_gradient(lambda v: resize_images(v, 20, "bicubic", True), x)
    assert torch.equal(plain_out, through_out)
    assert plain.abs().max() == 0 and through.abs().max() > 0
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 1, 10, [0.3], [0.3], resize={"size": 20, "mode": "bicubic"}).eval()
    outs, grads = [], []
    for flag in (False, True):
        model.straight_through = flag
        v = x.clone().requires_grad_(True)
        outs.append(model(v))
        grads.append(torch.autograd.grad(outs[-1].sum(), v)[0])
    assert torch.equal(outs[0], outs[1]) and not torch.allclose(grads[0], grads[1])


def test_adaptive_attack_sets_straight_through_only_while_it_runs(defended, batch):
    idx, x, y = batch
    seen = []

    def noise(part_idx, shape, step, k):
        seen.append((defended.denoiser.straight_through, defended.classifier.straight_through))
        return torch.zeros((len(part_idx), *shape))

    for through in (True, False):
        seen.clear()
        adaptive_attack(
            defended, SPEC, 0.1, idx, x, y, "single", 1, 1, 0, 6, "cpu", straight_through=through, noise=noise
        )
        assert seen and set(seen) == {(through, through)}
        assert not defended.denoiser.straight_through and not defended.classifier.straight_through


def test_bpda_gradient_is_the_classifiers_at_the_denoised_image(defended, batch):
    _, x, y = batch
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    denoised = defended.denoiser(x, noise).detach().requires_grad_(True)
    expected = torch.autograd.grad(F.cross_entropy(defended.classifier(denoised), y), denoised)[0]
    v = x.clone().requires_grad_(True)
    with defended.gradient(straight_through=True, bpda=True):
        out = defended(v, noise)
        got = torch.autograd.grad(F.cross_entropy(out, y), v)[0]
    assert torch.equal(out, defended(x, noise))  # the forward pass is the defence's
    assert torch.allclose(got, expected, atol=1e-7) and not defended.bpda
    exact = torch.autograd.grad(F.cross_entropy(defended(v, noise), y), v)[0]
    assert not torch.allclose(exact, expected, atol=1e-4)  # the exact gradient differs


# --- the defence scored over k draws (dds.evaluation.adaptive) ---


class NoiseClassifier(torch.nn.Module):
    """A stand-in defence whose class is a bucket of the noise's first value (0, 1, 2)."""

    def __init__(self, sigma=0.25):
        super().__init__()
        self.denoiser = torch.nn.Module()
        self.denoiser.sigma = sigma
        self.denoiser.noise_shape = tuple

    def forward(self, x, noise):
        first = noise.flatten(1)[:, 0]
        return F.one_hot((first > -0.4).long() + (first > 0.4).long(), 3).float()


def test_majority_ties_go_to_the_lowest_class():
    preds = np.array([[2, 0, 1, 3], [1, 0, 2, 3], [2, 1, 1, 0], [1, 1, 2, 0]])  # [draws, images]
    assert list(majority(preds)) == [1, 0, 1, 0]


def test_k_draw_scoring_matches_hand_counts(batch):
    idx, x, _ = batch
    labels = torch.ones(len(idx), dtype=torch.long)
    clean = ImageSet(idx, labels, x)
    rows = defended_predictions(NoiseClassifier(), clean, x, "clean", 0.0, 5, seed=3, batch_size=4, device="cpu")
    hand = np.zeros((5, len(idx)), dtype=np.int64)
    for d in range(5):
        first = evaluation_noise(idx, x.shape[1:], 3, 0.25, d).flatten(1)[:, 0]
        hand[d] = (first > -0.4).long() + (first > 0.4).long()
    right = hand == 1
    assert np.array_equal(np.stack(rows["correct_draws"]), right.T)
    assert np.allclose(rows["frac_correct"], right.mean(0))
    counts = [[(hand[:, i] == c).sum() for c in range(3)] for i in range(len(idx))]
    assert list(rows["pred_majority"]) == [int(np.argmax(c)) for c in counts]
    assert list(rows["correct_majority"]) == [int(np.argmax(c)) == 1 for c in counts]
    first = image_noise(idx, x.shape[1:], 3, 0.25).flatten(1)[:, 0]
    assert list(rows["pred_single"]) == ((first > -0.4).long() + (first > 0.4).long()).tolist()
    # seeded per (seed, sigma, image, draw): not the batching, nor the denoise stage's draw
    again = defended_predictions(NoiseClassifier(), clean, x, "clean", 0.0, 5, seed=3, batch_size=1, device="cpu")
    assert np.array_equal(np.stack(again["correct_draws"]), np.stack(rows["correct_draws"]))
    assert not torch.equal(evaluation_noise(idx, x.shape[1:], 3, 0.25, 0), image_noise(idx, x.shape[1:], 3, 0.25))


class RecordingDenoiser(torch.nn.Module):
    """A denoiser that records the noise of every call made with gradients on (the attack's)."""

    def __init__(self, denoiser):
        super().__init__()
        self.inner, self.sigma, self.t, self.attack_noise = denoiser, denoiser.sigma, denoiser.t, []
        self.noise_shape = denoiser.noise_shape

    @property
    def straight_through(self):
        return self.inner.straight_through

    @straight_through.setter
    def straight_through(self, on):
        self.inner.straight_through = on

    def forward(self, x, noise):
        if torch.is_grad_enabled():
            self.attack_noise.append(noise.clone())
        return self.inner(x, noise)


ADAPTIVE = {
    "targets": ["single"],
    "eot_draws": 2,
    "draws_per_pass": 2,
    "straight_through": True,
    "compare_masked": True,
    "compare_bpda": True,
    "fixed_noise": True,
    "eval_draws": 3,
}


def test_adaptive_evaluation_rows_and_the_fixed_noise_attack(defended, batch):
    idx, x, y = batch
    clean = ImageSet(idx, y, x)
    unaware = {0.1: ImageSet(idx, y, (x + 0.05).clamp(0, 1))}
    names = {"classifier": "resnet", "attack": "pgd", "denoiser": "ddpm"}
    recorder = RecordingDenoiser(defended.denoiser)
    spec = {**ADAPTIVE, "targets": [], "compare_masked": False, "compare_bpda": False}  # only the fixed-noise one
    adaptive_evaluation(defended.classifier, recorder, clean, unaware, SPEC, spec, names, 7, 8, "cpu")
    assert len(recorder.attack_noise) == SPEC["steps"]  # one batch, one draw per step: the evaluation's draw
    for noise in recorder.attack_noise:
        assert torch.equal(noise, image_noise(idx, x.shape[1:], 7, defended.denoiser.sigma))
    table = adaptive_evaluation(
        defended.classifier, defended.denoiser, clean, unaware, SPEC, ADAPTIVE, names, 7, 4, "cpu"
    )
    kinds = [
        "clean",
        "unaware",
        "adaptive-single",
        "adaptive-single-masked",
        "adaptive-single-bpda",
        "adaptive-fixed-noise",
    ]
    assert list(table["attack"].unique()) == kinds and (table.groupby("attack").size() == len(idx)).all()
    settings = table.groupby("attack", sort=False).first()
    assert list(settings["eot_draws"].astype("Float64").fillna(0)) == [0, 0, 2, 2, 2, 1]
    assert list(settings["straight_through"].astype("object").fillna("na")) == ["na", "na", True, False, True, True]
    assert list(settings["bpda"].astype("object").fillna("na")) == ["na", "na", False, False, True, False]
    assert (table["t_star"] == defended.denoiser.t).all() and (table["eval_draws"] == 3).all()
    assert settings.loc["unaware", "step_size"] == pytest.approx(2.5 * 0.1 / 3)
    assert all(len(flags) == 3 for flags in table["correct_draws"])


def test_config_keys_of_the_adaptive_section():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = schema["properties"]["adaptive"]["properties"]
    assert keys["straight_through"]["default"] is True and keys["eval_draws"]["default"] >= 1
    assert keys["fixed_noise"]["default"] is True and keys["compare_masked"]["default"] is False
    assert "vote_draws" not in keys and "alpha" not in keys
    demo = validate(
        yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "workflow" / "schemas" / "config.schema.yaml"
    )
    assert {k: demo["adaptive"][k] for k in ADAPTIVE if k != "targets"} == {
        "eot_draws": 4,
        "draws_per_pass": 4,
        "straight_through": True,
        "compare_masked": True,
        "compare_bpda": False,
        "fixed_noise": True,
        "eval_draws": 10,
    }

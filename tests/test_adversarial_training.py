"""PGD adversarial training as an option of train_classifier: the mixed batches, eval mode
while crafting, robust accuracy in the metrics, determinism for a seed, spec checks."""

import pytest
import torch

from conftest import fit
from dds.models.classifiers import build_classifier, check_adversarial_spec
from dds.models.feature_denoising import NonLocalDenoise

MEAN, STD = [0.3], [0.25]
SPEC = {"epsilon": 0.1, "steps": 2, "step_size": 2.5, "step_mode": "relative", "random_start": True, "fraction": 0.5}


def train(digits8, seed, adversarial=SPEC, feature_denoising=None, train_size=64):
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 1, 10, MEAN, STD, feature_denoising)
    metrics = fit(
        model,
        digits8.subset(0, train_size),
        digits8.subset(100, 132),
        weight_decay=0.05,
        seed=seed,
        adversarial=adversarial,
    )
    return model, metrics


def test_records_robust_accuracy_and_is_deterministic(digits8):
    fd = {"variant": "softmax", "stages": [1, 2, 3, 4]}
    model, metrics = train(digits8, seed=3, feature_denoising=fd)
    assert 0 <= metrics["heldout_robust_accuracy"] <= 1 and 0 <= metrics["heldout_accuracy"] <= 1
    assert metrics["adversarial_training"] == SPEC
    assert not model.training
    # the blocks left the identity: their BN scales learned
    assert all(m.bn.weight.abs().sum() > 0 for m in model.modules() if isinstance(m, NonLocalDenoise))
    again, again_metrics = train(digits8, seed=3, feature_denoising=fd)
    state, again_state = model.state_dict(), again.state_dict()
    assert all(torch.equal(state[k], again_state[k]) for k in state)
    assert {k: v for k, v in metrics.items() if k != "seconds"} == {
        k: v for k, v in again_metrics.items() if k != "seconds"
    }
    other, _ = train(digits8, seed=4, feature_denoising=fd)
    assert not all(torch.equal(state[k], other.state_dict()[k]) for k in state)


def test_adversarial_examples_change_the_training(digits8):
    adversarial, metrics = train(digits8, seed=3)
    standard, standard_metrics = train(digits8, seed=3, adversarial=None)
    assert "heldout_robust_accuracy" not in standard_metrics and "adversarial_training" not in standard_metrics
    assert not torch.equal(adversarial.net.fc.weight, standard.net.fc.weight)


@pytest.mark.parametrize("fraction, adversarial_count", [(0.25, 8), (1.0, 32)])
def test_batches_mix_pgd_and_clean_images_crafted_in_eval_mode(digits8, fraction, adversarial_count):
    """One batch of 32: `fraction` of it within epsilon of a training image but moved, the rest
    exact training images; PGD's forward passes run in eval mode, the update in train mode."""
    spec = {**SPEC, "fraction": fraction}
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 1, 10, MEAN, STD)
    modes, batches = [], []

    def record(module, args):
        modes.append(module.training)
        if module.training:
            batches.append(args[0].detach().clone())

    model.register_forward_pre_hook(record)
    data = digits8.subset(0, 32)
    fit(model, data, digits8.subset(100, 110), adversarial=spec)
    assert modes[: spec["steps"] + 1] == [False] * spec["steps"] + [True]  # crafting, then the update
    (batch,) = batches
    distance = (batch[:, None] - data.images[None]).flatten(2).abs().amax(2).amin(1)  # to the nearest image
    assert torch.all(distance[:adversarial_count] > 0) and torch.all(distance[:adversarial_count] <= 0.1 + 1e-6)
    assert torch.all(distance[adversarial_count:] == 0)
    assert batch.min() >= 0 and batch.max() <= 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fraction": 0}, "adversarial_training.fraction"),
        ({"fraction": 1.5}, "adversarial_training.fraction"),
        ({"epsilon": 0}, "adversarial_training.epsilon"),
        ({"steps": 0}, "adversarial_training.steps"),
        ({"step_mode": "fixed"}, "adversarial_training.step_mode"),
        ({"random_start": "yes"}, "adversarial_training.random_start"),
        ({"alpha": 0.01}, "unknown \\['alpha'\\]"),
    ],
)
def test_bad_specs_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        check_adversarial_spec({**SPEC, **change})


def test_missing_key_is_named():
    spec = dict(SPEC)
    del spec["epsilon"]
    with pytest.raises(ValueError, match="missing \\['epsilon'\\]"):
        check_adversarial_spec(spec)

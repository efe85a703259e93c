"""Classifiers (timm, normalisation inside): build, save, load, tamper detection, and
deterministic training. The DDPMs are in test_ddpm.py."""

from pathlib import Path

import pytest
import torch
import yaml

from conftest import fit, tamper
from dds.config import validate
from dds.io import DataFileError, save_tensors, write_images
from dds.models.classifiers import Normalized, build_classifier, load_classifier, save_classifier

REPO = Path(__file__).resolve().parents[1]
# the shipped config's classifiers, with the schema's defaults filled in as the workflow does
SPECS = validate(
    yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "workflow" / "schemas" / "config.schema.yaml"
)["classifiers"]
MEAN, STD = [0.3], [0.25]


def build(name, seed=0):
    torch.manual_seed(seed)
    spec = SPECS[name]
    return build_classifier(spec["model"], spec["kwargs"], 1, 10, MEAN, STD, spec.get("feature_denoising")).eval()


@pytest.fixture(scope="module")
def x16():
    return torch.rand((3, 1, 16, 16), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_default_classifiers_build_and_map_to_logits(name, x16):
    model = build(name)
    assert isinstance(model, Normalized)
    with torch.no_grad():
        out = model(x16)
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    has_cbam = any("Cbam" in type(m).__name__ for m in model.modules())
    assert has_cbam == (name == "cbam-resnet")


def test_unknown_timm_model():
    with pytest.raises(ValueError, match="resnet_not_a_model"):
        build_classifier("resnet_not_a_model", {}, 1, 10, MEAN, STD)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_normalisation_is_inside(name, x16):
    model = build(name)
    assert torch.equal(model.mean.flatten(), torch.tensor(MEAN)) and torch.equal(model.std.flatten(), torch.tensor(STD))
    with torch.no_grad():
        out = model(x16)
        assert torch.allclose(out, model.net((x16 - 0.3) / 0.25), atol=1e-6)
        assert not torch.allclose(out, model.net(x16), atol=1e-3)


def test_normalisation_per_channel():
    torch.manual_seed(0)
    model = build_classifier("resnet18", {}, 3, 10, [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]).eval()
    x = torch.rand((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - mean) / std), atol=1e-6)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_classifier_round_trip(tmp_path, name, x16):
    model = build(name)
    path = tmp_path / f"{name}.safetensors"
    save_classifier(model, path, SPECS[name], 1, 10)
    other = build(name, seed=1)  # different weights: the file must carry everything
    with torch.no_grad():
        assert not torch.equal(model(x16), other(x16))
    loaded = load_classifier(path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x16), model(x16))
    assert torch.equal(loaded.mean, model.mean) and torch.equal(loaded.std, model.std)
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)


TAMPER_CLASSIFIER = {
    "missing key": lambda t: t.pop("net.fc.weight"),
    "extra key": lambda t: t.update({"net.extra": torch.zeros(2)}),
    "wrong shape": lambda t: t.update({"net.fc.bias": torch.zeros(11)}),
    "wrong conv shape": lambda t: t.update({"net.conv1.weight": torch.zeros(64, 1, 3, 3)}),
}


@pytest.mark.parametrize("case", sorted(TAMPER_CLASSIFIER))
def test_tampered_classifier_names_file(tmp_path, case):
    path = tmp_path / "resnet.safetensors"
    save_classifier(build("resnet"), path, SPECS["resnet"], 1, 10)
    tamper(path, TAMPER_CLASSIFIER[case])
    with pytest.raises(DataFileError) as info:
        load_classifier(path)
    assert str(path) in str(info.value)


def test_classifier_without_metadata_or_file(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_tensors(build("resnet").state_dict(), path)
    with pytest.raises(DataFileError, match="metadata") as info:
        load_classifier(path)
    assert str(path) in str(info.value)
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(DataFileError) as info:
        load_classifier(missing)
    assert str(missing) in str(info.value)


def trained_state(digits8, seed, init_seed=0):
    torch.manual_seed(init_seed)
    model = build_classifier("resnet18", {}, 1, 10, MEAN, STD)
    train, heldout = digits8.subset(0, 64), digits8.subset(64, 80)
    metrics = fit(model, train, heldout, weight_decay=0.05, seed=seed)
    assert metrics["epochs"] == 1 and metrics["train_images"] == 64 and metrics["heldout_images"] == 16
    assert 0 <= metrics["train_accuracy"] <= 1 and 0 <= metrics["heldout_accuracy"] <= 1
    assert not model.training
    return model.state_dict()


def test_train_classifier_is_deterministic(digits8):
    a = trained_state(digits8, seed=7)
    b = trained_state(digits8, seed=7)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    untrained = build_classifier("resnet18", {}, 1, 10, MEAN, STD).state_dict()
    assert not torch.equal(a["net.fc.weight"], untrained["net.fc.weight"])  # it did train
    c = trained_state(digits8, seed=8)  # another seed: another batch order
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_survives_a_last_batch_of_one(digits8):
    # 33 images in batches of 32 would leave one image, which BatchNorm cannot train on
    model = build_classifier("resnet18", {}, 1, 10, MEAN, STD)
    metrics = fit(model, digits8.subset(0, 33), digits8.subset(33, 40), weight_decay=0.05)
    assert metrics["train_images"] == 33


def test_classifier_file_without_normalisation_names_the_file(tmp_path):
    path = tmp_path / "clf.safetensors"
    save_classifier(build_classifier("resnet18", {}, 1, 10, MEAN, STD), path, {"model": "resnet18"}, 1, 10)
    tamper(path, lambda t: t.pop("mean"))
    with pytest.raises(DataFileError, match="mean"):
        load_classifier(path)


def test_the_seed_and_name_decide_the_initial_weights(tmp_path):
    """The train_classifier stage seeds the initialisation from (config seed, classifier name)."""
    from dds.data import sampling as data
    from dds.pipeline.classifiers import train_classifier as train_stage

    train, evaluation = data.split(data.load_digits(8), 100, seed=0)
    write_images(tmp_path / "train.parquet", train.subset(0, 40))
    write_images(tmp_path / "eval.parquet", evaluation.subset(0, 20))
    spec = {"model": "resnet18", "kwargs": {}, "epochs": 1, "batch_size": 40, "lr": 1e-9, "weight_decay": 0.0}

    def weights(seed, name):
        out = tmp_path / f"{seed}-{name}.safetensors"
        train_stage(
            train=tmp_path / "train.parquet",
            eval=tmp_path / "eval.parquet",
            weights=out,
            metrics=tmp_path / "metrics.json",
            name=name,
            spec=spec,
            seed=seed,
            device="cpu",
        )
        return load_classifier(out).net.fc.weight

    assert torch.equal(weights(0, "a"), weights(0, "a"))
    assert not torch.equal(weights(0, "a"), weights(1, "a"))
    assert not torch.equal(weights(0, "a"), weights(0, "b"))


@pytest.mark.parametrize("total", [1, 2, 20, 1000])
def test_learning_rate_warms_up_then_decays_for_any_length(total):
    from dds.models.schedule import warmup_cosine

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = warmup_cosine(optimizer, total)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert all(0 < r <= 1 for r in rates)
    assert max(rates) == pytest.approx(1.0, abs=0.02) or total < 3
    peak = rates.index(max(rates))
    assert rates[peak:] == sorted(rates[peak:], reverse=True)

"""Diffusion calibration (dds.diffusion.calibration): each loss term against hand-worked values,
a frozen classifier, steps 0 as the identity, the calibrated file's strict round trip, exact
resumption, and the pipeline stage end to end."""

import copy
import dataclasses
import json

import pytest
import torch

from conftest import TINY_UNET, tamper
from dds.diffusion import calibration
from dds.diffusion.calibration_loss import (
    anti_consistency,
    brier,
    calibration_loss,
    denoising_mse,
    majority_right,
    noised,
)
from dds.diffusion.checkpoints import OpenAICheckpoint, UNetConfig
from dds.diffusion.ddpm import DiffusersEps, build_scheduler, build_unet, save_ddpm
from dds.diffusion.loading import load_denoiser, load_eps_model, save_calibrated
from dds.diffusion.one_shot import OneShotDenoiser
from dds.diffusion.openai_unet import UNetModel
from dds.io import DataFileError, ImageSet, load_tensors, read_json, save_tensors, sha256_file, write_images
from dds.models import training
from dds.models.classifiers import build_classifier, save_classifier
from dds.pipeline.denoisers import calibrate_denoiser

SCHEDULE = {"num_train_timesteps": 100, "beta_schedule": "linear"}  # sigmas up to ~0.65
SIGMAS = [0.25, 0.5]
SPEC = {
    "kind": "calibrated",
    "base": "ddpm",
    "classifier": "resnet",
    "sigmas": None,
    "steps": 4,
    "batch_size": 4,
    "draws": 2,
    "lr": 1e-3,
    "brier_weight": 1.0,
    "anti_weight": 1.0,
    "denoising_weight": 1.0,
    "checkpoint_every": 2,
}
SETTINGS = calibration.Settings.from_spec(SPEC)

# p [N=2, m=2, C=3] with labels y = [0, 2]
P = torch.tensor([[[0.6, 0.4, 0.0], [0.8, 0.1, 0.1]], [[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]]])
Y = torch.tensor([0, 2])


def test_brier_by_hand():
    # image 0: (0.4^2 + 0.4^2 + 0) = 0.32 and (0.2^2 + 0.1^2 + 0.1^2) = 0.06, mean 0.19
    # image 1: (0.2^2 + 0.7^2 + 0.9^2) = 1.34 and (0.5^2 + 0.3^2 + 0.8^2) = 0.98, mean 1.16
    assert torch.allclose(brier(P, Y), torch.tensor([0.19, 1.16]))


def test_anti_consistency_by_hand():
    # pbar 0 = [0.7, 0.25, 0.05]: 0.49 + 0.0625 + 0.0025 = 0.555
    # pbar 1 = [0.35, 0.5, 0.15]: 0.1225 + 0.25 + 0.0225 = 0.395
    assert torch.allclose(anti_consistency(P), torch.tensor([0.555, 0.395]))
    assert torch.allclose(anti_consistency(torch.full((1, 3, 4), 0.25)), torch.tensor([0.25]))  # uniform: 1/C
    assert torch.allclose(anti_consistency(torch.eye(4)[None, [2, 2]]), torch.tensor([1.0]))  # one class


def test_majority_by_hand():
    # image 0 votes 0, 0: right; image 1 votes 1, 0: a tie, which goes to class 0: wrong
    assert majority_right(P, Y).tolist() == [True, False]
    assert majority_right(P, torch.tensor([0, 0])).tolist() == [True, True]


def test_loss_combines_groups_by_hand():
    loss, terms = calibration_loss(P, Y, torch.tensor(0.3), brier_weight=2.0, anti_weight=3.0, denoising_weight=0.5)
    # Brier over the right image 0 only: 0.19; ||pbar||^2 over the wrong image 1 only: 0.395
    # 2 * 0.19 + 3 * 0.395 + 0.5 * 0.3 = 0.38 + 1.185 + 0.15 = 1.715
    assert loss.item() == pytest.approx(1.715)
    assert terms == pytest.approx({"brier": 0.19, "anti": 0.395, "denoising": 0.3, "loss": 1.715, "right": 0.5})
    # every image right: the anti-consistency group is empty and contributes 0
    loss, terms = calibration_loss(P, torch.tensor([0, 0]), torch.tensor(0.0), 1.0, 1.0, 1.0)
    # Brier of image 1 against class 0: (0.8^2 + 0.7^2 + 0.1^2) = 1.14 and (0.5^2 + 0.3^2 + 0.2^2) = 0.38
    # mean 0.76; over both images (0.19 + 0.76) / 2 = 0.475
    assert terms["anti"] == 0 and loss.item() == pytest.approx(0.475)


def test_denoising_mse_by_hand():
    abar = torch.tensor([0.64, 0.36], dtype=torch.float64)
    x = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)  # in [-1,1]: 1 and -1
    t, noise = torch.tensor([0, 1]), torch.ones(2, 1, 1, 1)
    # 0.8 * 1 + 0.6 * 1 = 1.4 and 0.6 * -1 + 0.8 * 1 = 0.2
    assert torch.allclose(noised(2 * x - 1, t, noise, abar).flatten(), torch.tensor([1.4, 0.2]))

    def learned_variance(x_t, t):  # 2C channels: epsilon = x_t, then a variance channel to be ignored
        return torch.cat([x_t, torch.full_like(x_t, 100.0)], 1)

    # ((1.4 - 1)^2 + (0.2 - 1)^2) / 2 = (0.16 + 0.64) / 2 = 0.4
    assert denoising_mse(learned_variance, x, t, noise, abar).item() == pytest.approx(0.4)


@pytest.fixture(scope="module")
def train(digits8):
    return ImageSet(digits8.idx[:32], digits8.labels[:32], digits8.images[:32])


@pytest.fixture(scope="module")
def base():
    """(eps network, alphas_cumprod) of a tiny DDPM with a fixed initialisation."""
    torch.manual_seed(0)
    return DiffusersEps(build_unet(8, 1, TINY_UNET)).eval(), build_scheduler(SCHEDULE).alphas_cumprod.double()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(1)
    return build_classifier("resnet18", {}, 1, 10, [0.3], [0.3]).eval()


def run(base, classifier, train, settings=SETTINGS, **options):
    """calibrate() on a copy of the base network: (calibrated network, record)."""
    eps = copy.deepcopy(base[0])
    record = calibration.calibrate(eps, base[1], classifier, train, settings, SIGMAS, 5, "cpu", **options)
    return eps, record


def same_weights(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_frozen_while_denoiser_changes(base, classifier, train):
    before = copy.deepcopy(classifier.state_dict())  # BatchNorm statistics included
    eps, record = run(base, classifier, train, dataclasses.replace(SETTINGS, steps=3))
    after = classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not classifier.training and not any(p.requires_grad for p in classifier.parameters())
    assert not same_weights(eps, base[0]) and not eps.training
    assert record["steps"] == 3 and 0 <= record["fraction_right"] <= 1
    assert set(record["final"]) == {"step", "loss", "brier", "anti", "denoising", "right"}


def test_zero_steps_keep_the_base_weights(base, classifier, train):
    eps, record = run(base, classifier, train, dataclasses.replace(SETTINGS, steps=0))
    assert same_weights(eps, base[0]) and record["final"] is None


class Interrupted(Exception):
    pass


def test_resume_continues_exactly(base, classifier, train, tmp_path, monkeypatch):
    uninterrupted, _ = run(base, classifier, train)
    save = training.save_checkpoint

    def save_then_stop(folder, step, *args):
        save(folder, step, *args)
        raise Interrupted  # killed right after the checkpoint of step 2

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        run(base, classifier, train, checkpoint_dir=tmp_path / "ckpt")
    monkeypatch.setattr(training, "save_checkpoint", save)
    torch.manual_seed(123)  # a new process: the checkpoint restores every generator
    resumed, record = run(base, classifier, train, checkpoint_dir=tmp_path / "ckpt")
    assert record["resumed_from"] == 2 and same_weights(resumed, uninterrupted)
    # a checkpoint of other settings is discarded, and the run starts over
    _, record = run(base, classifier, train, dataclasses.replace(SETTINGS, lr=2e-3), checkpoint_dir=tmp_path / "ckpt")
    assert record["resumed_from"] == 0


def tiny_openai(tmp_path):
    """An openai denoiser file referring to a tiny improved-diffusion checkpoint (learned sigma)."""
    unet = UNetConfig(8, 32, 1, (1, 2), (), in_channels=1, learn_sigma=True)
    spec = OpenAICheckpoint("tiny", None, unet, "linear", 100, rescale_timesteps=True)
    torch.manual_seed(2)
    torch.save(UNetModel(unet).state_dict(), tmp_path / "tiny.pt")
    meta = {"spec": json.dumps(dataclasses.asdict(spec)), "path": str(tmp_path / "tiny.pt")}
    save_tensors(
        {}, tmp_path / "openai.safetensors", {**meta, "kind": "openai", "sha256": sha256_file(tmp_path / "tiny.pt")}
    )
    return tmp_path / "openai.safetensors"


@pytest.fixture(params=["ddpm", "openai"])
def calibrated(request, base, tmp_path):
    """(base denoiser file, a calibrated file of its network) for either architecture."""
    if request.param == "ddpm":
        path = tmp_path / "ddpm.safetensors"
        save_ddpm(base[0].unet, build_scheduler(SCHEDULE), path)
    else:
        path = tiny_openai(tmp_path)
    eps, abar, architecture = load_eps_model(path, "cpu")
    assert architecture["architecture"] == request.param
    save_calibrated(eps, abar, architecture, {"base": "b", "steps": 0}, tmp_path / "cal.safetensors")
    return path, tmp_path / "cal.safetensors"


def test_calibrated_file_loads_strictly(calibrated, digits8):
    path, cal = calibrated
    x, noise = digits8.images[:3], torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_denoiser(cal, 0.5, "cpu")(x, noise), load_denoiser(path, 0.5, "cpu")(x, noise))
    _, meta = load_tensors(cal)
    assert meta["kind"] == "calibrated" and meta["base"] == "b" and meta["steps"] == "0"
    assert load_eps_model(cal, "cpu")[2] == load_eps_model(path, "cpu")[2]  # a calibrated base passes its own on


TAMPER = {
    "missing weight": lambda t: t.pop(next(k for k in t if k.startswith("unet."))),
    "extra weight": lambda t: t.update({"unet.extra": torch.zeros(2)}),
    "extra tensor": lambda t: t.update({"extra": torch.zeros(2)}),
    "no schedule": lambda t: t.pop("alphas_cumprod"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_calibrated_file_that_does_not_fit_names_file(calibrated, case):
    _, cal = calibrated
    tamper(cal, TAMPER[case])
    with pytest.raises(DataFileError, match=str(cal)):
        load_denoiser(cal, 0.25, "cpu")


@pytest.mark.parametrize("steps", [0, 2])
def test_calibrate_denoiser_stage(base, classifier, train, tmp_path, steps):
    paths = {k: tmp_path / f"{k}.{ext}" for k, ext in [("train", "parquet"), ("base", "st"), ("classifier", "st")]}
    write_images(paths["train"], train)
    save_ddpm(base[0].unet, build_scheduler(SCHEDULE), paths["base"])
    save_classifier(classifier, paths["classifier"], {"model": "resnet18"}, 1, 10)
    weights, metrics, checkpoint = tmp_path / "cal.safetensors", tmp_path / "cal.json", tmp_path / "cal.checkpoint"
    spec = {**SPEC, "steps": steps}
    calibrate_denoiser(
        **paths,
        weights=weights,
        metrics=metrics,
        checkpoint=checkpoint,
        name="cal",
        spec=spec,
        sigmas=SIGMAS,
        seed=0,
        device="cpu",
    )
    tensors, meta = load_tensors(weights)
    base_tensors, _ = load_tensors(paths["base"])
    assert tensors.keys() == base_tensors.keys()
    assert all(torch.equal(tensors[k], base_tensors[k]) for k in tensors) == (steps == 0)
    assert meta["kind"] == "calibrated" and meta["architecture"] == "ddpm" and meta["steps"] == str(steps)
    assert meta["base_sha256"] == sha256_file(paths["base"]) and meta["classifier"] == "resnet"
    assert meta["classifier_sha256"] == sha256_file(paths["classifier"])
    assert json.loads(meta["calibration"]) == {
        "settings": dataclasses.asdict(SETTINGS) | {"steps": steps},
        "sigmas": SIGMAS,
        "seed": 0,
    }
    record = read_json(metrics)
    assert record["steps"] == steps and record["kind"] == "calibrated" and not checkpoint.exists()
    denoiser = load_denoiser(weights, 0.5, "cpu")
    assert isinstance(denoiser, OneShotDenoiser) and not denoiser.eps_model.training

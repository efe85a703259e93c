"""The out-of-memory fallback of the batch loops (dds.batching): a CUDA out-of-memory error,
injected on the CPU, halves the batch of the stage, which goes on with the results of an
uninterrupted run and of a run at half the batch size, and says so in the log; and the
per-rule batch sizes of the config."""

import contextlib
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY, snakemake, workflow_copy
from dds import batching
from dds.attacks.adaptive import Defended, adaptive_attack
from dds.attacks.generate import attack
from dds.batching import in_batches
from dds.diffusion.ddpm import DiffusersEps, build_scheduler, save_ddpm
from dds.diffusion.one_shot import OneShotDenoiser, denoise_images
from dds.evaluation.attention_maps import cbam_spatial_maps, gradcam_maps
from dds.evaluation.blur import blur_predictions
from dds.evaluation.classify import predictions
from dds.io import ImageSet, read_images, read_table, write_images
from dds.models.classifiers import accuracy, build_classifier, save_classifier
from dds.pipeline.denoise import denoise_and_classify
from dds.smoothing.sampling import certify_images

PGD = {"method": "pgd_linf", "steps": 3, "step_size": 2.5, "step_mode": "relative", "random_start": False}
ABAR = build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}).alphas_cumprod


@pytest.fixture(autouse=True)
def fresh_fallbacks(monkeypatch):
    """Each test starts as a new job: no stage has fallen back yet."""
    monkeypatch.setattr(batching, "_FALLBACK", {})


def out_of_memory(size, limit):
    return torch.OutOfMemoryError(f"CUDA out of memory (injected: batch {size} > {limit})")


@contextlib.contextmanager
def memory_for(module, limit):
    """`module` raises CUDA's out-of-memory error on batches of more than `limit` images."""

    def check(module, args):
        if len(args[0]) > limit:
            raise out_of_memory(len(args[0]), limit)

    handle = module.register_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def data(digits8):
    pos = torch.arange(0, 160, 10)  # 16 images of every class
    return ImageSet(digits8.idx[pos].clone(), digits8.labels[pos].clone(), digits8.images[pos].clone())


@pytest.fixture
def denoiser(tiny_unet):
    return OneShotDenoiser(DiffusersEps(tiny_unet), ABAR, 0.5)


def fallback_equals(run, module, stage, caplog, big=8):
    """run(batch_size) at `big` while `module` fits only big / 2 images: the stage warns once,
    naming both sizes, and returns what an uninterrupted run at `big` and a run at big / 2
    return: (those three results, for the caller to compare)."""
    reference = run(big)  # before the fallback: afterwards the stage keeps the smaller size
    with memory_for(module, big // 2), caplog.at_level(logging.WARNING, logger="dds.batching"):
        fallen = run(big)
    warnings = [r.getMessage() for r in caplog.records if r.name == "dds.batching"]
    assert warnings == [
        f"{stage}: CUDA out of memory at batch size {big}; retrying at batch size {big // 2}, "
        "kept for the rest of this job"
    ]
    return reference, fallen, run(big // 2)


# --- the loop itself --------------------------------------------------------------------------


def test_ranges_cover_the_items_in_order():
    assert in_batches("s", 10, 4, lambda a, b: (a, b)) == [(0, 4), (4, 8), (8, 10)]
    assert in_batches("s", 0, 4, lambda a, b: (a, b)) == []
    with pytest.raises(ValueError, match="s: batch_size must be >= 1, got 0"):
        in_batches("s", 10, 0, lambda a, b: (a, b))


def test_halves_until_it_fits_and_keeps_the_size(caplog):
    tried = []

    def step(start, stop):
        tried.append(stop - start)
        if stop - start > 3:
            raise torch.cuda.OutOfMemoryError("injected")  # the same class as torch.OutOfMemoryError
        return list(range(start, stop))

    with caplog.at_level(logging.WARNING, logger="dds.batching"):
        out = in_batches("denoise", 11, 12, step)
    assert sum(out, []) == list(range(11))
    assert tried == [11, 5, 2, 2, 2, 2, 2, 1]  # the last batch is halved from its own length
    assert "denoise: CUDA out of memory at batch size 11; retrying at batch size 5" in caplog.text
    assert "denoise: CUDA out of memory at batch size 5; retrying at batch size 2" in caplog.text
    # the rest of the job starts at the size that fitted; another stage keeps its own
    tried.clear()
    caplog.clear()
    assert sum(in_batches("denoise", 4, 12, step), []) == list(range(4))
    assert tried == [2, 2] and not caplog.records
    tried.clear()
    in_batches("classify", 4, 3, step)
    assert tried == [3, 1]


def test_gives_up_at_batch_size_one():
    def step(start, stop):
        raise out_of_memory(stop - start, 0)

    with pytest.raises(RuntimeError, match="certify sampling: CUDA out of memory even at batch size 1") as info:
        in_batches("certify sampling", 5, 4, step)
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    assert "a GPU with more memory" in str(info.value)


def test_other_errors_are_not_retried():
    tried = []

    def step(start, stop):
        tried.append(stop - start)
        raise RuntimeError("CUDA error: device-side assert triggered")

    with pytest.raises(RuntimeError, match="device-side assert"):
        in_batches("classify", 8, 8, step)
    assert tried == [8]


# --- every stage: the same results as without the error, and at half the batch size -----------


def test_classify(model, data, caplog):
    results = fallback_equals(lambda b: predictions(model, data, b, "cpu"), model, "classify", caplog)
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0])  # the logits too, bit for bit


def test_accuracy(model, data, caplog):
    reference, fallen, half = fallback_equals(lambda b: accuracy(model, data, b, "cpu"), model, "accuracy", caplog)
    assert reference == fallen == half


def test_denoise(denoiser, data, caplog):
    results = fallback_equals(lambda b: denoise_images(denoiser, data, 0, b, "cpu"), denoiser, "denoise", caplog)
    for other in results[1:]:
        assert torch.equal(other, results[0])  # the noise is drawn per image


def test_blur(model, data, caplog):
    results = fallback_equals(lambda b: blur_predictions(model, data, 3, 1.0, b, "cpu"), model, "blur", caplog)
    for other in results[1:]:
        pd.testing.assert_frame_equal(other, results[0])


def test_certify_sampling(denoiser, model, data, caplog):
    subset = data.subset(0, 2)

    def run(draws_per_pass):
        frames = certify_images(denoiser, {"m": model}, subset, 8, 24, 0.01, 0, draws_per_pass, "cpu")["m"]
        return frames.drop(columns="time")

    reference, fallen, half = fallback_equals(run, denoiser, "certify sampling", caplog)
    for other in (fallen, half):  # the counts of every class, draw for draw
        assert all(np.array_equal(a, b) for a, b in zip(reference["counts"], other["counts"]))
        pd.testing.assert_frame_equal(
            other.drop(columns=["counts0", "counts"]), reference.drop(columns=["counts0", "counts"])
        )


def test_attack(model, data, caplog):
    def run(b):
        return attack(model, PGD, 0.1, data.images, data.labels, b, 0, "cpu")

    reference, fallen, half = fallback_equals(run, model, "attack", caplog)
    # torchattacks averages the loss over the batch: at another batch size the gradients are
    # scaled by another power of two, exactly, and PGD L-inf keeps only their signs
    assert torch.equal(fallen, reference) and torch.equal(half, reference)
    assert not torch.equal(reference, data.images)


def test_attack_l2(model, data, caplog):
    def run(b):
        return attack(model, {**PGD, "method": "pgd_l2"}, 0.5, data.images, data.labels, b, 0, "cpu")

    reference, fallen, half = fallback_equals(run, model, "attack", caplog)
    # PGD L2 normalises the gradient, whose batch-mean scaling then shows in the last bit
    assert torch.allclose(fallen, reference, rtol=0, atol=1e-6) and torch.equal(fallen, half)
    assert (reference - data.images).flatten(1).norm(dim=1).max() > 0.1


def test_attack_random_start_is_seeded_per_batch(model, data, caplog):
    """torchattacks draws a random start per batch, so a halved run draws as a run at half
    the batch size does, not as the uninterrupted run (dds.attacks.generate.attack)."""
    spec = {**PGD, "random_start": True}

    def run(b):
        return attack(model, spec, 0.1, data.images, data.labels, b, 0, "cpu")

    reference, fallen, half = fallback_equals(run, model, "attack", caplog)
    assert torch.equal(fallen, half) and not torch.equal(fallen, reference)


def test_adaptive_attack(denoiser, model, data, caplog):
    defended = Defended(denoiser, model).eval()
    subset = data.subset(0, 8)

    def run(b):
        return adaptive_attack(
            defended, PGD, 0.1, subset.idx, subset.images, subset.labels, "single", 2, 1, 0, b, "cpu"
        )

    results = fallback_equals(run, defended, "adaptive attack", caplog, big=4)
    for other in results[1:]:  # the loss is summed over images: no batch-size scaling
        assert torch.equal(other, results[0])


@pytest.fixture(scope="module")
def cbam(data):
    torch.manual_seed(0)
    model = build_classifier("resnet18", {"block_args": {"attn_layer": "cbam"}}, 1, 10, [0.3], [0.25]).eval()
    with torch.no_grad():  # untrained, timm's zero-scale last BNs would make every CBAM map constant
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d) and not module.weight.any():
                module.weight.fill_(1.0)
    return model


@pytest.mark.parametrize("method", ["gradcam", "cbam"])
def test_attention_maps(cbam, data, method, caplog):
    images = torch.nn.functional.interpolate(data.images, size=(16, 16), mode="bilinear")

    def run(b):
        if method == "gradcam":
            return gradcam_maps(cbam, images, data.labels, b)
        return cbam_spatial_maps(cbam, images, b)

    results = fallback_equals(run, cbam, "attention maps", caplog)
    for other in results[1:]:
        assert torch.equal(other, results[0])


# --- a stage of the workflow, from its files --------------------------------------------------


def save_denoise_models(tmp_path, tiny_unet) -> None:
    """The denoise stage's two files: the tiny DDPM as `d`, a seeded ResNet-18 as `c`."""
    save_ddpm(tiny_unet, build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}), tmp_path / "d")
    torch.manual_seed(0)
    save_classifier(
        build_classifier("resnet18", {}, 1, 10, [0.5], [0.25]),
        tmp_path / "c",
        {"model": "resnet18", "kwargs": {}},
        1,
        10,
    )


def test_denoise_and_classify_stage(tmp_path, tiny_unet, data, monkeypatch, caplog):
    """The rule's stage function with every convolution out of memory above 4 images: the
    files it writes equal those of an uninterrupted run at 8 and of a run at 4."""
    write_images(tmp_path / "in.parquet", data)
    save_denoise_models(tmp_path, tiny_unet)

    def run(b, name):
        out = tmp_path / name
        out.mkdir()
        denoise_and_classify(
            images=[tmp_path / "in.parquet"],
            denoiser=tmp_path / "d",
            classifier=tmp_path / "c",
            denoised=[out / "denoised.parquet"],
            predictions=[out / "predictions.parquet"],
            sigmas=[0.5],
            seed=0,
            batch_size=b,
            device="cpu",
        )
        return read_images(out / "denoised.parquet"), read_table(out / "predictions.parquet")

    reference = run(8, "reference")
    convolve = torch.nn.Conv2d.forward

    def tight(self, x):
        if len(x) > 4:
            raise out_of_memory(len(x), 4)
        return convolve(self, x)

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="dds.batching"):
        patch.setattr(torch.nn.Conv2d, "forward", tight)
        fallen = run(8, "fallen")
    assert "denoise: CUDA out of memory at batch size 8; retrying at batch size 4" in caplog.text
    assert "classify: CUDA out of memory at batch size 8; retrying at batch size 4" in caplog.text
    half = run(4, "half")
    for images, table in (fallen, half):
        assert torch.equal(images.images, reference[0].images) and torch.equal(images.idx, reference[0].idx)
        pd.testing.assert_frame_equal(table, reference[1])


def test_one_denoise_job_over_sets_and_sigmas_writes_what_a_job_per_set_and_sigma_writes(tmp_path, tiny_unet, data):
    """The rule's job covers every set of a (classifier, shard) at every sigma (outputs in
    every_set's order, sigma fastest): file for file, what single-set, single-sigma calls
    write, since each draw is seeded by (sigma, image), not by the job."""
    sets = [ImageSet(data.idx, data.labels, data.images), ImageSet(data.idx, data.labels, data.images.flip(-1))]
    for k, images in enumerate(sets):
        write_images(tmp_path / f"in{k}.parquet", images)
    save_denoise_models(tmp_path, tiny_unet)
    common = dict(denoiser=tmp_path / "d", classifier=tmp_path / "c", seed=0, batch_size=8, device="cpu")
    sigmas = [0.25, 0.5]
    names = [f"{k}-{s}" for k in range(2) for s in sigmas]
    denoise_and_classify(
        images=[tmp_path / "in0.parquet", tmp_path / "in1.parquet"],
        denoised=[tmp_path / f"all-{n}.parquet" for n in names],
        predictions=[tmp_path / f"all-{n}-pred.parquet" for n in names],
        sigmas=sigmas,
        **common,
    )
    for k in range(2):
        for sigma in sigmas:
            name = f"{k}-{sigma}"
            denoise_and_classify(
                images=[tmp_path / f"in{k}.parquet"],
                denoised=[tmp_path / f"one-{name}.parquet"],
                predictions=[tmp_path / f"one-{name}-pred.parquet"],
                sigmas=[sigma],
                **common,
            )
            fused, single = read_images(tmp_path / f"all-{name}.parquet"), read_images(tmp_path / f"one-{name}.parquet")
            assert torch.equal(fused.images, single.images)
            pd.testing.assert_frame_equal(
                read_table(tmp_path / f"all-{name}-pred.parquet"), read_table(tmp_path / f"one-{name}-pred.parquet")
            )
    # the two sigmas and the two sets differ: each file is its own (set, sigma)
    assert not torch.equal(
        read_images(tmp_path / "all-0-0.25.parquet").images, read_images(tmp_path / "all-0-0.5.parquet").images
    )
    assert not torch.equal(
        read_images(tmp_path / "all-0-0.5.parquet").images, read_images(tmp_path / "all-1-0.5.parquet").images
    )
    with pytest.raises(ValueError, match="2 image sets at 2 sigmas need 4 denoised files, got 1"):
        denoise_and_classify(
            images=[tmp_path / "in0.parquet", tmp_path / "in1.parquet"],
            denoised=[tmp_path / "x.parquet"],
            predictions=[tmp_path / "y.parquet"],
            sigmas=sigmas,
            **common,
        )
    assert not (tmp_path / "x.parquet").exists()


# --- the config -------------------------------------------------------------------------------


def test_a_batch_size_for_a_rule_without_batches_stops_the_run(tmp_path):
    config = {**TINY, "batch_sizes": {"attack": 8, "certify_clean": 4}}
    result = snakemake(workflow_copy(tmp_path, config), "-n")
    assert result.returncode != 0
    assert (
        "config key 'batch_sizes': no batched rule named certify_clean; the rules that run in batches are "
        "adaptive_attack, attack, attention_maps, blur_adversarial, blur_noise, classify_undefended, "
        "denoise_and_classify, iterations_sweep, purification, transfer_matrix (certification's noise draws "
        "per pass: "
        "certify.batch_size)"
    ) in result.stdout + result.stderr

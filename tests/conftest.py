"""Shared fixtures: tiny data and models for the unit tests of dds, and the tiny config with
one finished run of it for the workflow tests (one run per test session, shared by the test
files that read it)."""

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# The models here are tiny: one thread is as fast as two, and it avoids the large slow-downs
# of oversubscribed OpenMP threads when a workflow shares the CPU cores with the tests.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


# The outermost session (not an xdist worker, nor a pytest that a test starts: the GPU check's)
# gives the processes below it a temporary directory of their own, where the workflow runs' job
# server (dds.jobs) makes its socket, so that another test session on this checkout (`make check`
# beside `make test`) has a server of its own and never stops this one's.
OUTERMOST = "DDS_TEST_SESSION" not in os.environ
if OUTERMOST:
    os.environ["DDS_TEST_SESSION"] = os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="dds-test-")


def pytest_sessionfinish(session):
    """The job server leaves with the test session rather than after its idle time: at the end
    of the outermost session, once every worker is done."""
    if not OUTERMOST:
        return
    import psutil

    folder = os.environ["DDS_TEST_SESSION"]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "dds.job_server" in cmdline and any(arg.startswith(folder) for arg in cmdline):
            proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


# a diffusers UNet small enough to run in milliseconds on a CPU
TINY_UNET = dict(block_out_channels=[8, 16], layers_per_block=1, attention_levels=[])


@pytest.fixture(scope="session")
def digits8():
    """The scikit-learn digits at their native 8x8 (1797 images, one channel)."""
    from dds.data.sampling import load_digits

    return load_digits(8)


@pytest.fixture
def tiny_unet():
    """A freshly built tiny UNet for 8x8 single-channel images, with a fixed initialisation."""
    from dds.diffusion.ddpm import build_unet

    torch.manual_seed(0)
    return build_unet(8, 1, TINY_UNET).eval()


@pytest.fixture(scope="module")
def model():
    """A freshly built ResNet-18 for single-channel images (the attacks' tests), fixed initialisation."""
    from dds.models.classifiers import build_classifier

    torch.manual_seed(0)
    return build_classifier("resnet18", {}, 1, 10, [0.3], [0.3]).eval()


def fit(model, train, heldout, **options):
    """dds.models.classifiers.train_classifier on the CPU, one epoch in batches of 32 at lr 1e-3
    without weight decay, seed 0, unless `options` say otherwise: its metrics."""
    from dds.models.classifiers import train_classifier

    settings = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0, "seed": 0, "device": "cpu"}
    return train_classifier(model, train, heldout, **{**settings, **options})


def tamper(path, change):
    """Apply `change` to the tensors of a safetensors file, keeping its metadata."""
    from dds.io import load_tensors, save_tensors

    tensors, meta = load_tensors(path)
    change(tensors)
    save_tensors(tensors, path, meta)


def made_up_accuracy(classifiers, sigmas, epsilons, pgd_drop=12, classifier_drop=0.02, n=64):
    """An accuracy table (dds.reporting.tables.ACCURACY_COLUMNS) of made-up, plausible numbers:
    PGD accuracy falls by `pgd_drop` per unit of epsilon, clean accuracy by `classifier_drop`
    from one classifier to the next."""
    import pandas as pd

    from dds.reporting.tables import ACCURACY_COLUMNS

    rows = [
        {
            "classifier": classifier,
            "attack": "pgd",
            "denoiser": "ddpm",
            "sigma": sigma,
            "epsilon": eps,
            "clean_acc": 0.85 - classifier_drop * c,
            "pgd_acc": max(0.0, 0.85 - pgd_drop * eps),
            "denoised_acc": 0.8 - sigma / 4 - eps,
            "linf_max": eps,
            "l2_max": 30 * eps,
            "l2_mean": 20 * eps,
            "n": n,
            "precision": "fp32",
        }
        for c, classifier in enumerate(classifiers)
        for sigma in sigmas
        for eps in epsilons
    ]
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def draw_figures(out, tables, examples):
    """The report's figures in `out`: the accuracy of resnet50 in `tables` (acc.png, acc.svg), the
    comparison of all (cmp.png, cmp.svg) and the `examples` (ex.png)."""
    from dds.reporting.figures import accuracy_figure, comparison_figure, examples_figure

    accuracy_figure(tables[tables["classifier"] == "resnet50"], out / "acc.png", out / "acc.svg")
    comparison_figure(tables, out / "cmp.png", out / "cmp.svg")
    examples_figure(examples, out / "ex.png")


@pytest.fixture
def cifar_sample(tmp_path):
    """The sample stage on a tiny CIFAR-10 (40 training, 60 test images; dataset.md5 gives
    these files' checksums): (train path, eval path)."""
    from dds.pipeline.sample import sample
    from dds.rehearsal.standins import cifar10_md5, write_cifar10

    write_cifar10(tmp_path, per_batch=8, test_size=60, seed=3)
    paths = tmp_path / "train.parquet", tmp_path / "eval.parquet"
    spec = {"name": "cifar10", "root": str(tmp_path), "download": False, "image_size": 32, "eval_size": 20}
    spec["md5"] = cifar10_md5(tmp_path)
    sample(train=paths[0], eval=paths[1], manifest=tmp_path / "manifest.json", dataset=spec, seed=0)
    return paths


@pytest.fixture
def compile_latex(tmp_path):
    """Compile a LaTeX table body in a minimal booktabs document with pdflatex (skip when
    pdflatex is absent); fails with pdflatex's output when it does not compile."""
    import shutil

    from dds.rehearsal.run import compile_latex

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not on PATH (apt-get install texlive-latex-base texlive-latex-recommended)")

    def run(body: str) -> None:
        (tmp_path / "body.tex").write_text(body)
        compile_latex([tmp_path / "body.tex"], tmp_path / "latex")
        assert (tmp_path / "latex" / "tables.pdf").stat().st_size > 0

    return run


TINY = {
    "seed": 3,
    "device": "cpu",
    "batch_size": 16,
    "dataset": {"name": "digits", "image_size": 16, "eval_size": 40, "shard_size": 20},
    "classifiers": {
        "resnet": {"model": "resnet18", "epochs": 2},
        "fd-resnet": {
            "model": "resnet18",
            "epochs": 1,
            "feature_denoising": {"stages": [3, 4]},
            "adversarial_training": {"steps": 1, "fraction": 0.25},
        },
    },
    "denoisers": {
        "ddpm": {"block_out_channels": [16, 32], "attention_levels": [1], "steps": 20, "batch_size": 16},
        # calibrated for resnet: a denoiser like any other downstream
        "ddpm-cal": {
            "kind": "calibrated",
            "base": "ddpm",
            "classifier": "resnet",
            "sigmas": [0.25, 0.5],  # pinned: adding a workflow sigma does not recalibrate it
            "steps": 4,
            "batch_size": 4,
            "draws": 2,
            "checkpoint_every": 2,
        },
        # multi-step purification with ddpm's network, run with resnet only
        "ddim3": {"kind": "multistep", "base": "ddpm", "sampler": "ddim", "steps": 3, "classifiers": ["resnet"]},
    },
    "attacks": {
        "pgd": {"method": "pgd_linf", "epsilons": [0.1], "steps": 2, "step_size": 2.5, "step_mode": "relative"}
    },
    "sigmas": [0.25, 0.5],
    # one certification shard of 20 (the partial last shard: tests/test_certify.py)
    "certify": {"num_images": 20, "n0": 10, "n": 50, "alpha": 0.01, "epsilons": [0.1]},
    "blur": {"noise_levels": [0.0, 0.25]},
    "iterations": {"enabled": True, "attack": "pgd", "epsilon": 0.1, "steps": [1, 3], "num_images": 20},
    "adaptive": {
        "enabled": True,
        "denoisers": ["ddpm", "ddpm-cal"],
        "attack": "pgd",
        "epsilons": [0.1],
        "eot_draws": 2,
        "draws_per_pass": 1,
        "eval_draws": 4,
        "num_images": 25,
    },
    "attention": {
        "enabled": True,
        "attack": "pgd",
        "epsilons": [0.1],
        "sigmas": [0.25],
        "num_images": 10,
        "figure_images": 2,
    },
    "purification": {
        "enabled": True,
        "denoisers": ["ddpm", "ddim3"],
        "classifiers": ["resnet"],
        "sigmas": [0.25],
        "attack": "pgd",
        "epsilon": 0.1,
        "num_images": 6,
        "eot_draws": 2,
        "draws_per_pass": 1,
        "eval_draws": 2,
    },
    "report": {"examples": 3},
}


def workflow_copy(path: Path, config: dict) -> Path:
    """The workflow's files in `path`, with `config` as its config.yaml."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", path)
    shutil.copytree(REPO / "workflow", path / "workflow")
    shutil.copytree(REPO / "envs", path / "envs")
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The Snakemake command line in `workdir` on 2 cores (`env`: the whole environment)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )


@pytest.fixture(scope="session")
def finished_run():
    """The tiny config run to the end, once per test session, in the session's folder: the
    first pytest-xdist worker to ask makes it while the other waits on a lock, then both read
    it. Tests that run more jobs in it work on a copy, so every reader sees the same run."""
    workdir = Path(os.environ["DDS_TEST_SESSION"]) / "finished-run"
    with open(f"{workdir}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = workdir.with_name("finished-run.failed")
        if failed.exists():
            pytest.fail(f"the shared tiny run failed in another worker:\n{failed.read_text()}")
        if not (workdir / ".finished").exists():
            workflow_copy(workdir, TINY)
            result = snakemake(workdir)
            if result.returncode != 0:
                failed.write_text(result.stderr[-4000:])
            assert result.returncode == 0, result.stderr[-4000:]
            (workdir / ".finished").touch()
    return workdir


def planned_jobs(dry_run_output: str) -> list[dict]:
    """Every job a dry run lists: {"rule": name} and its fields as text (wildcards,
    threads, resources, ...); fields() splits the `a=b, c=d` ones."""
    jobs = []
    for block in re.split(r"(?m)^(?=(?:local)?rule \w+:)", dry_run_output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        jobs.append({"rule": rule, **dict(re.findall(r"(?m)^    (\w+): (.*)$", block))})
    return jobs


def fields(text: str) -> dict:
    return dict(pair.split("=", 1) for pair in text.split(", ")) if text else {}

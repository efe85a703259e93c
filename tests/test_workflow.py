"""The workflow end to end on a tiny config, in a temporary directory, through the real
Snakemake command line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import TINY, snakemake, workflow_copy
from dds.io import load_tensors, sha256_file

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow


def test_tables_have_the_papers_columns_and_plausible_values(finished_run):
    results = finished_run / "results" / "digits"
    table = pd.read_parquet(results / "tables" / "resnet" / "pgd" / "ddpm.parquet")
    assert list(table[["sigma", "epsilon"]].itertuples(index=False, name=None)) == [
        (0.25, 0.0),
        (0.25, 0.1),
        (0.5, 0.0),
        (0.5, 0.1),
    ]
    assert table["n"].eq(40).all()
    # the clean row is unperturbed, the attacked row within its epsilon ball
    assert table.loc[table.epsilon == 0.0, "linf_max"].eq(0).all()
    assert table.loc[table.epsilon == 0.1, "linf_max"].between(0.05, 0.1 + 1e-6).all()
    assert (table["pgd_acc"] <= table["clean_acc"]).all()
    tex = (results / "tables" / "resnet" / "pgd" / "ddpm.tex").read_text()
    assert "\\toprule" in tex and "Denoised Acc." in tex
    summary = pd.read_parquet(results / "tables" / "accuracy.parquet")
    assert set(summary["classifier"]) == {"resnet", "fd-resnet"}
    ours = summary[(summary["classifier"] == "resnet") & (summary["denoiser"] == "ddpm")]
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), table)


def test_certificates_in_the_customary_format_and_certified_tables(finished_run):
    results = finished_run / "results" / "digits"
    for sigma in ("0.25", "0.5"):
        tsv = pd.read_csv(results / f"certify-clean/ddpm/sigma{sigma}/resnet.tsv", sep="\t")
        assert list(tsv.columns) == ["idx", "label", "predict", "radius", "correct", "time"]
        assert len(tsv) == 20 and set(tsv["correct"]) <= {0, 1}  # 0/1 per row, never a running total
        assert ((tsv["predict"] == -1) <= (tsv["radius"] == 0)).all()
    table = pd.read_parquet(results / "tables/certified/resnet/ddpm.parquet")
    assert set(table["method"]) == {"sigma=0.25", "sigma=0.5", "multi-scale"}
    clean = table[(table["source"] == "clean") & (table["method"] == "sigma=0.25")].sort_values("radius")
    assert clean["certified_acc"].is_monotonic_decreasing
    attacked = table[table["source"] == "adversarial"]
    assert set(attacked["epsilon"]) == {0.1} and attacked["covered"].between(0, 1).all()
    assert "\\toprule" in (results / "tables/certified/resnet/ddpm.tex").read_text()
    cascade = pd.read_parquet(results / "certify-clean/ddpm/multiscale/resnet.parquet")
    assert len(cascade) == 20 and cascade["stage"].between(0, 2).all()
    assert ((cascade["predict"] == -1) <= (cascade["radius"] == 0)).all()


def test_blur_majority_and_the_defences_comparison(finished_run):
    results = finished_run / "results" / "digits"
    blur = pd.read_parquet(results / "tables/blur/resnet.parquet")
    noise = blur[blur["source"] == "noise"].sort_values("noise_level")
    assert list(noise["noise_level"]) == [0.0, 0.25] and noise["n"].eq(40).all()
    assert set(blur.loc[blur["source"] == "attack", "epsilon"]) == {0.0, 0.1}
    defences = pd.read_parquet(results / "tables/defences.parquet")
    # with two denoisers, each diffusion row names its denoiser
    assert set(defences["defence"]) == {
        "none",
        "ddpm diffusion sigma=0.25",
        "ddpm diffusion sigma=0.5",
        "ddpm-cal diffusion sigma=0.25",
        "ddpm-cal diffusion sigma=0.5",
        "ddim3 diffusion sigma=0.25",
        "ddim3 diffusion sigma=0.5",
        "blur single",
        "blur majority",
    }
    html = (results / "report.html").read_text()
    assert "Certification" in html and "Gaussian-blur majority" in html


def test_attack_strength_adaptive_iterations_transfer(finished_run):
    results = finished_run / "results" / "digits"
    adaptive = pd.read_parquet(results / "tables/adaptive.parquet")
    assert set(adaptive["attack"]) == {
        "clean",
        "unaware",
        "adaptive-single",
        "adaptive-smoothed",
        "adaptive-fixed-noise",
    }
    assert adaptive["n"].eq(25).all() and set(adaptive["sigma"]) == {0.25, 0.5}
    attacked = adaptive[adaptive["attack"] != "clean"]
    assert attacked["linf_max"].le(0.1 + 1e-6).all() and attacked["epsilon"].eq(0.1).all()
    # the unaware rows are the main pipeline's denoised predictions: the same noise draw
    for sigma in (0.25, 0.5):
        main = pd.read_parquet(results / f"predictions/resnet/pgd/eps0.1/ddpm/sigma{sigma}/shard0.parquet")
        shard1 = pd.read_parquet(results / f"predictions/resnet/pgd/eps0.1/ddpm/sigma{sigma}/shard1.parquet")
        first = pd.concat([main, shard1]).head(25)
        row = attacked[
            (attacked["attack"] == "unaware")
            & (attacked["sigma"] == sigma)
            & (attacked["classifier"] == "resnet")
            & (attacked["denoiser"] == "ddpm")
        ]
        assert row["acc_single"].iloc[0] == pytest.approx(first["correct"].mean())
    assert "\\toprule" in (results / "tables/adaptive.tex").read_text()
    iterations = pd.read_parquet(results / "tables/iterations.parquet")
    assert sorted(set(iterations["steps"])) == [1, 3] and iterations["n"].eq(20).all()
    assert set(iterations["defence"]) == {"none", "sigma=0.25", "sigma=0.5"}
    transfer = pd.read_parquet(results / "tables/transfer.parquet")
    assert set(transfer["defence"]) == {"none", "sigma=0.25", "sigma=0.5"} and transfer["n"].eq(40).all()
    # the diagonal without defence is the white-box accuracy of the main table
    main = pd.read_parquet(results / "tables/resnet/pgd/ddpm.parquet").drop_duplicates("epsilon")
    diagonal = transfer.query(
        "denoiser == 'ddpm' and defence == 'none' and source == 'resnet' and target == 'resnet'"
    ).sort_values("epsilon")
    assert list(diagonal["accuracy"]) == pytest.approx(list(main.sort_values("epsilon")["pgd_acc"]))
    assert set(transfer["source"]) == set(transfer["target"]) == {"resnet", "fd-resnet"}
    html = (results / "report.html").read_text()
    for title in ("Adaptive attack", "Accuracy against PGD iterations", "Transfer between classifiers"):
        assert title in html


def test_a_calibrated_denoiser_is_a_denoiser_like_any_other(finished_run):
    results = finished_run / "results" / "digits"
    record = json.loads((results / "denoisers/ddpm-cal.json").read_text())
    assert record["steps"] == 4
    _, meta = load_tensors(results / "denoisers/ddpm-cal.safetensors")
    assert meta["kind"] == "calibrated"
    # the accuracy tables with every classifier; the defence's analyses with its own only
    for classifier in ("resnet", "fd-resnet"):
        table = pd.read_parquet(results / f"tables/{classifier}/pgd/ddpm-cal.parquet")
        assert set(table["sigma"]) == {0.25, 0.5} and table["n"].eq(40).all()
    assert (results / "tables/certified/resnet/ddpm-cal.parquet").exists()
    assert not (results / "tables/certified/fd-resnet/ddpm-cal.parquet").exists()
    cascade = pd.read_parquet(results / "certify-clean/ddpm-cal/multiscale/resnet.parquet")
    assert len(cascade) == 20
    adaptive = pd.read_parquet(results / "tables/adaptive.parquet")
    assert set(adaptive.loc[adaptive["denoiser"] == "ddpm-cal", "classifier"]) == {"resnet"}
    iterations = pd.read_parquet(results / "tables/iterations.parquet")
    assert set(iterations.loc[iterations["denoiser"] == "ddpm-cal", "classifier"]) == {"resnet"}
    html = (results / "report.html").read_text()
    assert "Diffusion calibration" in html
    assert "ddpm-cal (calibrated for resnet) against ddpm: one-draw denoised accuracy" in html
    assert "resnet: certified accuracy on the clean sample, ddpm → ddpm-cal" in html


def test_a_multistep_denoiser_and_the_purification_comparison(finished_run):
    results = finished_run / "results" / "digits"
    _, meta = load_tensors(results / "denoisers/ddim3.safetensors")
    assert meta["kind"] == "multistep" and meta["base_sha256"] == sha256_file(results / "denoisers/ddpm.safetensors")
    # a denoiser like any other, with its own classifiers only
    table = pd.read_parquet(results / "tables/resnet/pgd/ddim3.parquet")
    assert set(table["sigma"]) == {0.25, 0.5} and table["n"].eq(40).all()
    assert not (results / "tables/fd-resnet/pgd/ddim3.parquet").exists()
    certified = pd.read_parquet(results / "tables/certified/resnet/ddim3.parquet")
    assert certified["certified_acc"].between(0, 1).all()
    defences = pd.read_parquet(results / "tables/defences.parquet")
    assert set(defences.loc[defences["defence"].str.startswith("ddim3"), "classifier"]) == {"resnet"}
    # the comparison: one-shot and 3 DDIM steps on the same 6 images at the same t*
    purification = pd.read_parquet(results / "tables/purification.parquet").set_index("denoiser")
    assert list(purification.index) == ["ddpm", "ddim3"]
    assert list(purification["sampler"]) == ["one-shot", "ddim"] and list(purification["reverse_steps"]) == [1, 3]
    assert purification["t_star"].nunique() == 1 and purification["n"].eq(6).all()
    scores = ["clean", "unaware", "adaptive", "bpda", "cert_r0", "cert_r0.25", "abstain"]
    assert purification[scores].apply(lambda c: c.between(0, 1)).all().all()
    # certified and right at r=0.25 implies so at r=0
    assert (purification["cert_r0.25"] <= purification["cert_r0"]).all()
    assert (results / "tables/purification.tex").read_text().count("\\\\") >= 2
    html = (results / "report.html").read_text()
    assert "Multi-step purification" in html


def test_feature_denoising_classifier_and_attention_maps(finished_run):
    results = finished_run / "results" / "digits"
    metrics = json.loads((results / "classifiers/fd-resnet.json").read_text())
    assert 0 <= metrics["heldout_robust_accuracy"] <= 1 and metrics["adversarial_training"]["fraction"] == 0.25
    attention = pd.read_parquet(results / "tables/attention.parquet")
    assert set(attention["classifier"]) == {"resnet", "fd-resnet"} and set(attention["method"]) == {"gradcam"}
    assert set(attention["condition"]) == {"adversarial", "denoised"} and attention["images"].eq(10).all()
    assert attention["topk_iou_mean"].between(0, 1).all()
    assert (results / "figures/attention-fd-resnet-pgd-ddpm.png").read_bytes()[:4] == b"\x89PNG"
    html = (results / "report.html").read_text()
    assert "Attention under attack and denoising" in html and "heldout_robust_accuracy" in html


def test_every_stage_is_sharded_and_timed(finished_run):
    results = finished_run / "results" / "digits"
    assert len(list((results / "adversarial").rglob("shard*.parquet"))) == 8  # 2 classifiers x 2 epsilons x 2 shards
    # x 2 sigmas x 2 denoisers (the calibrated one with every classifier too), and the multistep
    # one's with resnet only: 2 epsilons x 2 shards x 2 sigmas
    assert len(list((results / "denoised").rglob("shard*.parquet"))) == 32 + 8
    bench = list((results / "benchmarks").rglob("*.tsv"))
    assert len(bench) >= 1 + 2 + 4 + 8 + 4 + 8 + 1
    html = (results / "report.html").read_text()
    for stage in (
        "train_denoiser",
        "attack",
        "denoise_and_classify",
        "classify_undefended",
        "certify_clean",
        "blur_noise",
    ):
        assert stage in html


def killed_during(workdir: Path, log_pattern: str, *targets: str) -> None:
    """Start the workflow (towards `targets`, or all) and SIGKILL it, jobs and all, once a
    job whose log matches `log_pattern` has started; then release Snakemake's lock as a user
    would."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--rerun-incomplete", *targets],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not any(workdir.glob(log_pattern)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, f"the workflow ended before a job matching {log_pattern} started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snakemake(workdir, "--unlock").returncode == 0


def assert_outputs_complete(results: Path) -> None:
    """Every output file present is whole: atomic writes leave a file complete or absent."""
    for path in results.rglob("*.parquet"):
        pq.read_metadata(path)
    for path in results.rglob("*.safetensors"):
        load_tensors(path)
    for path in results.rglob("*.json"):
        json.loads(path.read_text())


def test_killed_runs_resume_to_byte_identical_results(finished_run, tmp_path):
    """Kill the workflow during training, attack and denoising jobs, rerun: the results equal
    the uninterrupted run's byte for byte (tables) and exactly (every prediction). The run
    goes as far as the accuracy tables (every training, attack, classify and denoise job),
    not through the analyses after them, which the killed jobs do not feed."""
    again = workflow_copy(tmp_path / "again", TINY)
    results = again / "results" / "digits"
    target = "results/digits/tables/accuracy.parquet"
    for pattern in (
        "logs/digits/classifiers/*.log",
        "logs/digits/adversarial/**/*.log",
        "logs/digits/denoised/**/*.log",
    ):
        killed_during(again, pattern, target)
        assert_outputs_complete(results)
    result = snakemake(again, "--rerun-incomplete", target)
    assert result.returncode == 0, result.stderr[-4000:]
    first = finished_run / "results" / "digits"
    tables = sorted(p.relative_to(results) for p in (results / "tables").rglob("*") if p.is_file())
    # every accuracy table (3 denoisers; ddim3 with resnet only), its LaTeX, and the summary
    assert len([t for t in tables if t.suffix == ".parquet"]) == 2 + 2 + 1 + 1
    for table in tables:
        assert (first / table).read_bytes() == (results / table).read_bytes(), table
    for shard in (first / "predictions").rglob("*.parquet"):
        twin = results / shard.relative_to(first)
        pd.testing.assert_frame_equal(pd.read_parquet(shard), pd.read_parquet(twin), check_exact=True)


def test_bad_config_stops_before_any_job(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["sigmas"] = [0.25, -0.5]
    workdir = workflow_copy(tmp_path, bad)
    result = snakemake(workdir)
    assert result.returncode != 0
    assert "sigmas[1]" in result.stderr and "-0.5" in result.stderr
    assert not (workdir / "results").exists()


def test_lint_and_format_are_clean():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    tools = Path(sys.executable).parent
    for command in (
        [tools / "snakefmt", "--check", "--diff", "Snakefile", "workflow"],
        [tools / "ruff", "format", "--check", "--diff", "."],
        [tools / "ruff", "check", "."],
    ):
        done = subprocess.run([str(part) for part in command], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, f"{command[0].name} {' '.join(command[1:])}: {done.stdout + done.stderr}"


def test_snakemake_report_collects_the_marked_figures(finished_run):
    result = snakemake(finished_run, "--report", "snakemake-report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (finished_run / "snakemake-report.html").read_text()
    for name in ("accuracy-resnet-pgd-ddpm.png", "comparison.png", "examples.png"):
        assert name in html


def test_unreachable_epsilons_are_warned_before_any_job(finished_run):
    (finished_run / "paper-step.yaml").write_text(
        "attacks:\n  pgd:\n    method: pgd_linf\n    epsilons: [0.1]\n    steps: 5\n"
        "    step_size: 0.00784313725490196\n    step_mode: absolute\n"
    )
    result = snakemake(finished_run, "-n", "--configfile", "config.yaml", "paper-step.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout + result.stderr
    assert "attack 'pgd' (pgd_linf): 5 steps of 0.0078431 reach at most 0.039216 < epsilon 0.1" in out
    assert out.index("reach at most") < out.index("Job stats")

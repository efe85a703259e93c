"""The workflow end to end on a tiny config, in a temporary directory, through the real
Snakemake command line."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

TINY = {
    "seed": 3,
    "device": "cpu",
    "batch_size": 16,
    "dataset": {"name": "digits", "image_size": 16, "eval_size": 40, "shard_size": 20},
    "classifiers": {"resnet": {"model": "resnet18", "epochs": 2}},
    "denoisers": {"ddpm": {"block_out_channels": [16, 32], "attention_levels": [1], "steps": 20, "batch_size": 16}},
    "attacks": {"pgd": {"method": "pgd_linf", "epsilons": [0.1], "steps": 2, "step_size": 2.5,
                        "step_mode": "relative"}},
    "sigmas": [0.25, 0.5],
    "certify": {"num_images": 30, "n0": 10, "n": 50, "alpha": 0.01, "epsilons": [0.1]},
    "blur": {"noise_levels": [0.0, 0.25]},
    "iterations": {"enabled": True, "attack": "pgd", "epsilon": 0.1, "steps": [1, 3], "num_images": 20},
    "adaptive": {"enabled": True, "attack": "pgd", "epsilons": [0.1], "eot_draws": 2, "draws_per_pass": 1,
                 "vote_draws": 8, "num_images": 25},
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


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = workflow_copy(tmp_path_factory.mktemp("run"), TINY)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_tables_have_the_papers_columns_and_plausible_values(finished_run):
    results = finished_run / "results" / "digits"
    table = pd.read_parquet(results / "tables" / "resnet" / "pgd" / "ddpm.parquet")
    assert list(table[["sigma", "epsilon"]].itertuples(index=False, name=None)) == [
        (0.25, 0.0), (0.25, 0.1), (0.5, 0.0), (0.5, 0.1)]
    assert table["n"].eq(40).all()
    # the clean row is unperturbed, the attacked row within its epsilon ball
    assert table.loc[table.epsilon == 0.0, "linf_max"].eq(0).all()
    assert table.loc[table.epsilon == 0.1, "linf_max"].between(0.05, 0.1 + 1e-6).all()
    assert (table["pgd_acc"] <= table["clean_acc"]).all()
    tex = (results / "tables" / "resnet" / "pgd" / "ddpm.tex").read_text()
    assert "\\toprule" in tex and "Denoised Acc." in tex
    summary = pd.read_parquet(results / "tables" / "accuracy.parquet")
    pd.testing.assert_frame_equal(summary, table)


def test_certificates_in_the_customary_format_and_certified_tables(finished_run):
    results = finished_run / "results" / "digits"
    for sigma in ("0.25", "0.5"):
        tsv = pd.read_csv(results / f"certify-clean/ddpm/sigma{sigma}/resnet.tsv", sep="\t")
        assert list(tsv.columns) == ["idx", "label", "predict", "radius", "correct", "time"]
        assert len(tsv) == 30 and set(tsv["correct"]) <= {0, 1}  # 0/1 per row, never a running total
        assert ((tsv["predict"] == -1) <= (tsv["radius"] == 0)).all()
    table = pd.read_parquet(results / "tables/certified/resnet/ddpm.parquet")
    assert set(table["method"]) == {"sigma=0.25", "sigma=0.5", "multi-scale"}
    clean = table[(table["source"] == "clean") & (table["method"] == "sigma=0.25")].sort_values("radius")
    assert clean["certified_acc"].is_monotonic_decreasing
    attacked = table[table["source"] == "adversarial"]
    assert set(attacked["epsilon"]) == {0.1} and attacked["covered"].between(0, 1).all()
    assert "\\toprule" in (results / "tables/certified/resnet/ddpm.tex").read_text()
    cascade = pd.read_parquet(results / "certify-clean/ddpm/multiscale/resnet.parquet")
    assert len(cascade) == 30 and cascade["stage"].between(0, 2).all()
    assert ((cascade["predict"] == -1) <= (cascade["radius"] == 0)).all()


def test_blur_majority_and_the_defences_comparison(finished_run):
    results = finished_run / "results" / "digits"
    blur = pd.read_parquet(results / "tables/blur/resnet.parquet")
    noise = blur[blur["source"] == "noise"].sort_values("noise_level")
    assert list(noise["noise_level"]) == [0.0, 0.25] and noise["n"].eq(40).all()
    assert set(blur.loc[blur["source"] == "attack", "epsilon"]) == {0.0, 0.1}
    defences = pd.read_parquet(results / "tables/defences.parquet")
    assert set(defences["defence"]) == {"none", "diffusion sigma=0.25", "diffusion sigma=0.5", "blur single",
                                        "blur majority"}
    html = (results / "report.html").read_text()
    assert "Certification" in html and "Gaussian-blur majority" in html


def test_attack_strength_adaptive_iterations_transfer(finished_run):
    results = finished_run / "results" / "digits"
    adaptive = pd.read_parquet(results / "tables/adaptive.parquet")
    assert set(adaptive["attack"]) == {"clean", "unaware", "adaptive-single", "adaptive-smoothed"}
    assert adaptive["n"].eq(25).all() and set(adaptive["sigma"]) == {0.25, 0.5}
    attacked = adaptive[adaptive["attack"] != "clean"]
    assert attacked["linf_max"].le(0.1 + 1e-6).all() and attacked["epsilon"].eq(0.1).all()
    # the unaware rows are the main pipeline's denoised predictions: the same noise draw
    for sigma in (0.25, 0.5):
        main = pd.read_parquet(results / f"predictions/resnet/pgd/eps0.1/ddpm/sigma{sigma}/shard0.parquet")
        shard1 = pd.read_parquet(results / f"predictions/resnet/pgd/eps0.1/ddpm/sigma{sigma}/shard1.parquet")
        first = pd.concat([main, shard1]).head(25)
        row = attacked[(attacked["attack"] == "unaware") & (attacked["sigma"] == sigma)]
        assert row["acc_single"].iloc[0] == pytest.approx(first["correct"].mean())
    assert "\\toprule" in (results / "tables/adaptive.tex").read_text()
    iterations = pd.read_parquet(results / "tables/iterations.parquet")
    assert sorted(set(iterations["steps"])) == [1, 3] and iterations["n"].eq(20).all()
    assert set(iterations["defence"]) == {"none", "sigma=0.25", "sigma=0.5"}
    transfer = pd.read_parquet(results / "tables/transfer.parquet")
    assert set(transfer["defence"]) == {"none", "sigma=0.25", "sigma=0.5"} and transfer["n"].eq(40).all()
    # the diagonal without defence is the white-box accuracy of the main table
    main = pd.read_parquet(results / "tables/resnet/pgd/ddpm.parquet").drop_duplicates("epsilon")
    diagonal = transfer[transfer["defence"] == "none"].sort_values("epsilon")
    assert list(diagonal["accuracy"]) == pytest.approx(list(main.sort_values("epsilon")["pgd_acc"]))
    html = (results / "report.html").read_text()
    for title in ("Adaptive attack", "Accuracy against PGD iterations", "Transfer between classifiers"):
        assert title in html


def test_every_stage_is_sharded_and_timed(finished_run):
    results = finished_run / "results" / "digits"
    assert len(list((results / "adversarial").rglob("shard*.parquet"))) == 4  # 2 epsilons x 2 shards
    assert len(list((results / "denoised").rglob("shard*.parquet"))) == 8  # x 2 sigmas
    bench = list((results / "benchmarks").rglob("*.tsv"))
    assert len(bench) >= 1 + 2 + 4 + 8 + 4 + 8 + 1
    html = (results / "report.html").read_text()
    for stage in ("train_denoiser", "attack", "denoise", "classify_denoised", "certify_clean", "blur_noise"):
        assert stage in html


def test_a_second_dry_run_has_nothing_to_do(finished_run):
    result = snakemake(finished_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_same_seed_gives_identical_tables(finished_run, tmp_path):
    again = workflow_copy(tmp_path / "again", TINY)
    result = snakemake(again, str(Path("results/digits/tables/accuracy.parquet")))
    assert result.returncode == 0, result.stderr[-4000:]
    first = pd.read_parquet(finished_run / "results/digits/tables/accuracy.parquet")
    second = pd.read_parquet(again / "results/digits/tables/accuracy.parquet")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    for shard in (finished_run / "results/digits/predictions").rglob("*.parquet"):
        twin = again / shard.relative_to(finished_run)
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
    snakefmt = Path(sys.executable).with_name("snakefmt")
    fmt = subprocess.run([str(snakefmt), "--check", "--diff", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_snakemake_report_collects_the_marked_figures(finished_run):
    result = snakemake(finished_run, "--report", "snakemake-report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (finished_run / "snakemake-report.html").read_text()
    for name in ("accuracy-resnet-pgd-ddpm.png", "comparison.png", "examples.png"):
        assert name in html


def planned_jobs(dry_run_output: str) -> dict:
    """Job counts from the 'Job stats' table of a dry run."""
    lines = dry_run_output.split("Job stats:")[1].splitlines()
    counts = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_adding_a_sigma_plans_only_the_jobs_it_touches(finished_run):
    (finished_run / "more-sigmas.yaml").write_text("sigmas: [0.25, 0.5, 0.75]\n")
    result = snakemake(finished_run, "-n", "--configfile", "config.yaml", "more-sigmas.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    # 2 epsilons x 2 shards for the new sigma, then the aggregates
    # and the certification at the new sigma: 2 shards of the clean sample, 2 of the attacked set
    assert jobs == {"denoise": 4, "classify_denoised": 4, "accuracy_table": 1, "summary": 1, "examples": 1,
                    "certify_clean": 2, "certify_adversarial": 2, "certified_table": 1, "defences": 1,
                    "report": 1, "all": 1}


def test_unreachable_epsilons_are_warned_before_any_job(finished_run):
    (finished_run / "paper-step.yaml").write_text(
        "attacks:\n  pgd:\n    method: pgd_linf\n    epsilons: [0.1]\n    steps: 5\n"
        "    step_size: 0.00784313725490196\n    step_mode: absolute\n")
    result = snakemake(finished_run, "-n", "--configfile", "config.yaml", "paper-step.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout + result.stderr
    assert "attack 'pgd' (pgd_linf): 5 steps of 0.0078431 reach at most 0.039216 < epsilon 0.1" in out
    assert out.index("reach at most") < out.index("Job stats")

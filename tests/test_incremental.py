"""Incremental reruns with Snakemake's default rerun triggers (mtime, params, input,
software-env, code), planned by dry runs on the finished run of the tiny config: a change
reruns what depends on it and nothing else."""

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO, fields, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TRAINING = {"sample", "train_classifier", "train_denoiser"}


def planned(workdir: Path, *args: str, env=None) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run in `workdir` plans."""
    result = snakemake(workdir, "-n", *args, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return [(job["rule"], fields(job.get("wildcards", ""))) for job in planned_jobs(result.stdout + result.stderr)]


def counts(jobs) -> dict:
    return dict(Counter(rule for rule, _ in jobs))


def overlay(workdir: Path, name: str, values: dict) -> tuple[str, ...]:
    """--configfile arguments for the run's config overlaid with `values`."""
    (workdir / name).write_text(yaml.safe_dump(values))
    return ("--configfile", "config.yaml", name)


def test_a_second_dry_run_has_nothing_to_do(finished_run):
    assert planned(finished_run) == []


def test_adding_a_sigma_plans_only_its_jobs_and_the_aggregates(finished_run):
    jobs = planned(finished_run, *overlay(finished_run, "more-sigmas.yaml", {"sigmas": [0.25, 0.5, 0.75]}))
    # every job with a sigma is one of the new sigma's
    assert {w["sigma"] for _, w in jobs if "sigma" in w} == {"0.75"}
    # denoising runs one job per (denoiser, classifier, shard) over every set and sigma, so
    # each reruns whole (ddpm and ddpm-cal, whose own sigmas are pinned, with 2 classifiers,
    # ddim3 with resnet; 2 shards); per new sigma and denoiser: clean certification of its
    # one shard, the attacked set's per classifier; the adaptive attack at it; the jobs
    # that sweep every sigma in one (iterations_sweep, transfer_matrix); aggregates. ddpm-cal is
    # analysed with resnet only, except in the accuracy tables; ddim3 runs with resnet only, not
    # in the adaptive attack (its section's denoisers), nor in purification (its own sigmas).
    assert counts(jobs) == {
        "denoise_and_classify": 4 + 4 + 2,
        "certify_clean": 1 + 1 + 1,
        "certify_adversarial": 2 + 1 + 1,
        "adaptive_attack": 2 + 1,
        "iterations_sweep": 2 + 1 + 1,
        "transfer_matrix": 2 + 1 + 1,
        "accuracy_table": 2 + 2 + 1,
        # the attention maps read the rewritten denoised files (at their own sigma, 0.25)
        "attention_maps": 2 + 1 + 1,
        "attention_table": 1,
        "accuracy_summary": 1,
        "examples_figure": 1,
        "certified_table": 2 + 1 + 1,
        "adaptive_table": 1,
        "iterations_table": 1,
        "transfer_table": 1,
        "defences_table": 1,
        "report": 1,
        "all": 1,
    }


def test_adding_an_epsilon_attacks_only_at_it_and_reruns_the_cheap_per_set_jobs_whole(finished_run):
    pgd = yaml.safe_load((finished_run / "config.yaml").read_text())["attacks"]["pgd"]
    jobs = planned(
        finished_run, *overlay(finished_run, "more-eps.yaml", {"attacks": {"pgd": {**pgd, "epsilons": [0.05, 0.1]}}})
    )
    # the attack runs at the new epsilon only (2 classifiers x 2 shards); the expensive stages
    # that take an epsilon (certification of attacked sets, the adaptive attack) keep their jobs
    assert {w["epsilon"] for rule, w in jobs if rule == "attack"} == {"0.05"} and counts(jobs)["attack"] == 4
    assert not (TRAINING | {"certify_clean", "certify_adversarial", "adaptive_attack", "blur_noise"}) & {
        r for r, _ in jobs
    }
    # the per-set jobs run per (classifier, shard) over every set: each reruns whole, its old
    # sets too (docs/decisions.md): ddpm and ddpm-cal with 2 classifiers, ddim3 with resnet
    jobs = counts(jobs)
    assert jobs["classify_undefended"] == 4 and jobs["blur_adversarial"] == 4
    assert jobs["denoise_and_classify"] == (2 + 2 + 1) * 2


def test_a_calibration_setting_reruns_only_the_calibrated_denoiser_and_what_follows(finished_run):
    spec = yaml.safe_load((finished_run / "config.yaml").read_text())["denoisers"]["ddpm-cal"]
    jobs = planned(
        finished_run,
        *overlay(finished_run, "calibration.yaml", {"denoisers": {"ddpm-cal": {**spec, "anti_weight": 0.5}}}),
    )
    assert ("calibrate_denoiser", {"dataset": "digits", "denoiser": "ddpm-cal"}) in jobs
    assert not TRAINING & {rule for rule, _ in jobs}
    # every job with a denoiser is the calibrated one's; no attack, blur or undefended job
    assert {w["denoiser"] for _, w in jobs if "denoiser" in w} == {"ddpm-cal"}
    assert not {"attack", "classify_undefended", "blur_noise", "blur_adversarial"} & {rule for rule, _ in jobs}
    assert counts(jobs)["denoise_and_classify"] == 4  # with every classifier, 2 shards


def test_a_multistep_setting_reruns_only_that_denoiser_and_what_follows(finished_run):
    spec = yaml.safe_load((finished_run / "config.yaml").read_text())["denoisers"]["ddim3"]
    jobs = planned(
        finished_run, *overlay(finished_run, "more-steps.yaml", {"denoisers": {"ddim3": {**spec, "steps": 4}}})
    )
    assert ("multistep_denoiser", {"dataset": "digits", "denoiser": "ddim3"}) in jobs
    assert {w["denoiser"] for _, w in jobs if "denoiser" in w} == {"ddim3"}
    assert not (TRAINING | {"attack", "classify_undefended", "blur_noise", "calibrate_denoiser"}) & {r for r, _ in jobs}
    # with resnet only: 2 shards (each job every set and sigma); its purification job at sigma 0.25
    assert counts(jobs)["denoise_and_classify"] == 2 and counts(jobs)["purification"] == 1


def test_adding_a_multistep_denoiser_plans_only_its_jobs(finished_run):
    ddpm = {"kind": "multistep", "base": "ddpm", "sampler": "ddpm", "steps": 2, "classifiers": ["fd-resnet"]}
    jobs = planned(finished_run, *overlay(finished_run, "ancestral.yaml", {"denoisers": {"ancestral": ddpm}}))
    assert {w["denoiser"] for _, w in jobs if "denoiser" in w} == {"ancestral"}
    assert {w["classifier"] for _, w in jobs if "classifier" in w} == {"fd-resnet"}
    assert not (TRAINING | {"attack", "classify_undefended", "purification"}) & {r for r, _ in jobs}
    assert counts(jobs)["multistep_denoiser"] == 1 and counts(jobs)["denoise_and_classify"] == 2


def test_a_pgd_parameter_reruns_the_attacks_and_what_follows_not_training(finished_run):
    pgd = yaml.safe_load((finished_run / "config.yaml").read_text())["attacks"]["pgd"]
    jobs = counts(
        planned(
            finished_run,
            *overlay(finished_run, "more-steps.yaml", {"attacks": {"pgd": {**pgd, "steps": pgd["steps"] + 1}}}),
        )
    )
    assert not TRAINING & set(jobs)
    # every attack (2 classifiers x 2 epsilons x 2 shards) and everything made from its images
    # (per classifier and shard: ddpm's and ddpm-cal's, ddim3's with resnet only)
    assert jobs["attack"] == 8 and jobs["denoise_and_classify"] == 4 + 4 + 2 and jobs["classify_undefended"] == 4
    assert {"certify_adversarial", "blur_adversarial", "accuracy_table", "report"} <= set(jobs)


def test_certification_radii_and_the_purification_list_rerun_no_certificate_or_other_comparison(finished_run):
    """A certification job takes n0, n, alpha and its batch, not the section's radii, sets and
    denoisers (the tables' and the workflow's); a purification job takes its section without
    the list of denoisers compared."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    radii = {"certify": {**config["certify"], "radii": [0.0, 0.5]}}
    jobs = counts(planned(finished_run, *overlay(finished_run, "radii.yaml", radii)))
    assert not {"certify_clean", "certify_adversarial", "purification"} & set(jobs)
    assert jobs["certified_table"] == 2 + 1 + 1 and jobs["report"] == 1
    more = {"purification": {**config["purification"], "denoisers": ["ddpm", "ddim3", "ddpm-cal"]}}
    jobs = planned(finished_run, *overlay(finished_run, "compare.yaml", more))
    assert [w["denoiser"] for rule, w in jobs if rule == "purification"] == ["ddpm-cal"]
    assert {rule for rule, _ in jobs} == {"purification", "purification_table", "report", "all"}


def test_sections_take_their_denoisers_and_classifiers(finished_run, tmp_path):
    """accuracy.denoisers leaves a (costly) denoiser out of the accuracy tables: no table and no
    denoising job for it when no other section reads its denoised images; the classifiers of
    certification, the adaptive attack and the iterations sweep likewise."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    fresh = tmp_path / "fresh"
    shutil.copytree(finished_run, fresh, ignore=shutil.ignore_patterns("results", "logs", ".snakemake"))
    only = {"accuracy": {"denoisers": ["ddpm"]}, "transfer": {"denoisers": ["ddpm"]}}
    only["attention"] = {**config["attention"], "denoisers": ["ddpm"]}
    for section in ("certify", "adaptive", "iterations"):
        only[section] = {**config[section], "classifiers": ["fd-resnet"]}
    jobs = planned(fresh, *overlay(fresh, "only-ddpm.yaml", only))
    assert {w["denoiser"] for rule, w in jobs if rule in ("accuracy_table", "denoise_and_classify")} == {"ddpm"}
    assert counts(jobs)["accuracy_table"] == 2 and counts(jobs)["denoise_and_classify"] == 2 * 2
    # the other denoisers keep their analyses: certification, the adaptive attack, purification
    assert {"ddpm-cal", "ddim3"} <= {w.get("denoiser") for rule, w in jobs if rule != "denoise_and_classify"}
    # those three sections with fd-resnet only (ddpm-cal and ddim3 go with resnet: none there)
    for rule in ("certify_adversarial", "certified_table", "adaptive_attack", "iterations_sweep"):
        assert {w["classifier"] for r, w in jobs if r == rule} == {"fd-resnet"}, rule
    assert {w["denoiser"] for r, w in jobs if r == "adaptive_attack"} == {"ddpm"}


def test_adversarial_certification_of_the_listed_denoisers_only(finished_run, tmp_path):
    """certify.adversarial_denoisers: the calibrated denoiser is certified on the clean sample
    only, its certified table and the report without adversarial certificates."""
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    fresh = tmp_path / "fresh"
    shutil.copytree(finished_run, fresh, ignore=shutil.ignore_patterns("results", "logs", ".snakemake"))
    certify = {**config["certify"], "adversarial_denoisers": ["ddpm"]}
    jobs = planned(fresh, *overlay(fresh, "adversarial.yaml", {"certify": certify}))
    assert {w["denoiser"] for rule, w in jobs if rule == "certify_adversarial"} == {"ddpm"}
    for rule in ("certify_clean", "certified_table"):
        assert "ddpm-cal" in {w["denoiser"] for r, w in jobs if r == rule}, rule
    assert counts(jobs)["report"] == 1


def test_editing_only_the_report_template_reruns_only_the_report(finished_run, tmp_path):
    # a copy of the run (mtimes and Snakemake's records kept) and of the dds package, whose
    # template the copy's report then uses, so the repository's own template is never touched
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    shutil.copytree(REPO / "src" / "dds", tmp_path / "src" / "dds", ignore=shutil.ignore_patterns("__pycache__"))
    template = tmp_path / "src" / "dds" / "templates" / "report.html"
    template.write_text(template.read_text() + "<!-- edited template -->\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    assert counts(planned(run, env=env)) == {"report": 1, "all": 1}
    result = snakemake(run, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "<!-- edited template -->" in (run / "results" / "digits" / "report.html").read_text()
    assert planned(run, env=env) == []
    template.write_text(template.read_text() + "<!-- edited again -->\n")
    assert counts(planned(run, env=env)) == {"report": 1, "all": 1}

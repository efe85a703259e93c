"""The precision of a reproduction: the presets pin fp32 and bf16 is one overlay away, every
table and the report name the precision that produced them (mixed where the jobs differed),
and benchmarks/precision_agreement.py compares two runs that differ only in precision."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake.utils import update_config

from conftest import REPO, made_up_accuracy
from dds import layout
from dds.config import validate
from dds.evaluation.inference import resolve
from dds.io import write_table
from dds.precision import combined, precision_of, with_precision
from dds.reporting.html import render_report
from dds.reporting.tables import RESOURCE_COLUMNS

SCRIPT = REPO / "benchmarks" / "precision_agreement.py"


def test_combined_names_one_precision_or_the_mix():
    assert combined(["fp32", "fp32"]) == "fp32"
    assert combined(["fp32", "bf16", "fp32"]) == "mixed: bf16, fp32"
    # combining tables that are themselves mixed gives one flat mix, not a nested one
    assert combined(["mixed: bf16, fp32", "fp16"]) == "mixed: bf16, fp16, fp32"
    assert combined(["mixed: bf16, fp32", "bf16"]) == "mixed: bf16, fp32"
    with pytest.raises(ValueError, match="no precision"):
        combined([])


def test_the_resolved_precision_is_recorded_not_auto(monkeypatch):
    assert resolve(None, "cpu").precision == "fp32"
    assert resolve({"precision": "bf16"}, "cpu").precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve({"precision": "auto"}, "cuda").precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve({"precision": "auto"}, "cuda").precision == "fp16"


def test_precision_of_files_and_a_missing_column(tmp_path):
    frame = pd.DataFrame({"idx": [0, 1]})
    write_table(with_precision(frame, "fp32"), tmp_path / "a.parquet")
    write_table(with_precision(frame, "bf16"), tmp_path / "b.parquet")
    write_table(frame, tmp_path / "old.parquet")
    assert precision_of([tmp_path / "a.parquet"]) == "fp32"
    assert precision_of([tmp_path / "a.parquet", tmp_path / "b.parquet"]) == "mixed: bf16, fp32"
    with pytest.raises(ValueError, match=r"old\.parquet: missing column\(s\) \['precision'\]"):
        precision_of([tmp_path / "old.parquet"])


@pytest.mark.parametrize("name", ["cifar10-paper", "imagenet-paper"])
def test_presets_pin_fp32_and_the_overlay_gives_bf16(name):
    preset = yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())
    overlay = yaml.safe_load((REPO / "presets" / "bf16.yaml").read_text())
    assert preset["inference"] == {"precision": "fp32"}
    assert overlay == {"inference": {"precision": "bf16"}}  # an overlay touches nothing else
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    merged = copy.deepcopy(preset)
    update_config(merged, overlay)  # what Snakemake does with --configfile preset overlay
    config = validate(merged, schema)
    assert config["inference"]["precision"] == "bf16"
    alone = validate(copy.deepcopy(preset), schema)
    assert alone["inference"]["precision"] == "fp32"
    assert {**config, "inference": alone["inference"]} == alone


def test_denoise_stage_records_the_precision_of_its_predictions_and_images(tmp_path, tiny_unet, digits8):
    from dds.diffusion.ddpm import build_scheduler, save_ddpm
    from dds.io import write_images
    from dds.models.classifiers import build_classifier, save_classifier
    from dds.pipeline.denoise import denoise_and_classify

    write_images(tmp_path / "images.parquet", digits8.subset(0, 6))
    save_ddpm(
        tiny_unet,
        build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"}),
        tmp_path / "ddpm.safetensors",
    )
    torch.manual_seed(0)
    classifier = build_classifier("resnet18", {}, 1, 10, [0.5], [0.25])
    save_classifier(classifier, tmp_path / "clf.safetensors", {"model": "resnet18", "kwargs": {}}, 1, 10)
    for precision in ("fp32", "bf16"):
        out = {"denoised": tmp_path / f"{precision}-denoised.parquet", "predictions": tmp_path / f"{precision}.parquet"}
        denoise_and_classify(
            images=[tmp_path / "images.parquet"],
            denoiser=tmp_path / "ddpm.safetensors",
            classifier=tmp_path / "clf.safetensors",
            sigmas=[0.5],
            denoised=[out["denoised"]],
            predictions=[out["predictions"]],
            seed=0,
            batch_size=4,
            device="cpu",
            inference={"precision": precision},
        )
        assert precision_of(out.values()) == precision


def resources():
    return pd.DataFrame([], columns=RESOURCE_COLUMNS)


def test_report_states_the_precision_near_the_top():
    html = render_report(made_up_accuracy(["resnet"], [0.25], [0.0, 0.1]), [], resources(), {}, {}, "t")
    top = html[: html.index('<section id="accuracy">')]
    assert "Precision: <strong>fp32</strong>:" in top
    assert "did not all run in one precision" not in html
    assert "denoiser ddpm (fp32)</summary>" in html


def test_report_says_which_tables_mixed_precisions():
    tables = made_up_accuracy(["resnet", "vit"], [0.25], [0.0, 0.1])
    tables.loc[tables["classifier"] == "vit", "precision"] = "bf16"
    certified = {"results/d/tables/certified/resnet/ddpm.parquet": "mixed: bf16, fp32"}
    html = render_report(tables, [], resources(), {}, {}, "t", precisions=certified)
    top = html[: html.index('<section id="accuracy">')]
    assert 'Precision: <strong class="bad">mixed: bf16, fp32</strong>' in top
    assert "<li>accuracy: resnet, pgd, ddpm: fp32</li>" in top
    assert "<li>accuracy: vit, pgd, ddpm: bf16</li>" in top
    assert "<li>results/d/tables/certified/resnet/ddpm.parquet: mixed: bf16, fp32</li>" in top
    assert "denoiser ddpm (bf16)</summary>" in html


# --- benchmarks/precision_agreement.py on two made-up results folders ---------------------------


def made_up_run(root: Path, precision: str, flips: int) -> Path:
    """results/digits of a made-up run: predictions (undefended at epsilon 0 and 0.1, denoised
    at sigma 0.25) of 8 images in two shards, certificates of 4 images, an accuracy and a
    certified table; the last `flips` images of the denoised set at epsilon 0.1 predicted
    differently, the last certificate abstaining, and the accuracy cells moved by flips / 8."""
    where = dict(dataset="digits", classifier="clf", attack="pgd", denoiser="ddpm")
    labels = np.arange(8) % 3

    def predictions(pattern, eps, wrong):
        for shard, rows in enumerate((range(4), range(4, 8))):
            idx = np.asarray(rows)
            pred = np.where(np.isin(idx, wrong), (labels[idx] + 1) % 3, labels[idx])
            frame = pd.DataFrame({"idx": idx, "label": labels[idx], "pred": pred, "correct": pred == labels[idx]})
            path = layout.fill(pattern, epsilon=eps, sigma=0.25, shard=shard, **where)
            write_table(with_precision(frame, precision), root / path)

    for eps in (0.0, 0.1):
        predictions(layout.PREDICTIONS_UNDEFENDED, eps, [0] if eps else [])
        predictions(layout.PREDICTIONS_DENOISED, eps, list(range(8 - flips, 8)) if eps else [])
    certificates = pd.DataFrame(
        {
            "idx": range(4),
            "label": labels[:4],
            "predict": [*labels[:3], -1 if flips else labels[3]],
            "radius": [0.5, 0.25 + flips / 100, 0.0, 0.0 if flips else 0.3],
        }
    )
    path = layout.fill(layout.CERTIFICATES_CLEAN, sigma=0.25, shard=0, **where)
    write_table(with_precision(certificates, precision), root / path)
    accuracy = made_up_accuracy(["clf"], [0.25], [0.0, 0.1]).assign(precision=precision)
    accuracy.loc[accuracy["epsilon"] == 0.1, "denoised_acc"] -= flips / 8
    write_table(accuracy, root / layout.fill(layout.TABLE, **where))
    certified = pd.DataFrame(
        {
            "source": "clean",
            "attack": "",
            "epsilon": 0.0,
            "method": "sigma=0.25",
            "radius": [0.0, 0.25],
            "certified_acc": [0.75, 0.5 - flips / 4],
            "smoothed_acc": 0.75,
        }
    )
    write_table(with_precision(certified, precision), root / layout.fill(layout.CERTIFIED, **where))
    return root / "results" / "digits"


def agreement(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, a, b], capture_output=True, text=True, timeout=300)


def test_agreement_of_two_runs(tmp_path):
    fp32 = made_up_run(tmp_path / "fp32", "fp32", flips=0)
    bf16 = made_up_run(tmp_path / "bf16", "bf16", flips=2)
    done = agreement(fp32, bf16)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"# Agreement of A = {fp32} (fp32) and B = {bf16} (bf16)")
    assert "| prediction set | images | same class | accuracy A | accuracy B |" in out
    assert "| classifier clf, attack pgd, epsilon 0.1, denoiser ddpm, sigma 0.25 | 8 | 0.7500 (2 different) |" in out
    assert "| classifier clf, attack pgd, epsilon 0, denoiser ddpm, sigma 0.25 | 8 | 1.0000 (0 different) |" in out
    assert "| **all denoised sets** | 16 | 0.8750 (2 different) |" in out
    assert "| **all undefended sets** | 16 | 1.0000 (0 different) |" in out
    assert "In one folder only" not in out
    # the certification set: one image abstains in B only, one radius moved by 0.02
    assert "| denoiser ddpm, sigma 0.25, classifier clf | 4 | 0.7500 (1 different) | 1 | 0.0200 | 0.0067 |" in out
    assert (
        "| accuracy: classifier clf, attack pgd, denoiser ddpm | denoised_acc | 0.2500 | sigma 0.25, epsilon 0.1 | 2 |"
        in out
    )
    assert "| accuracy: classifier clf, attack pgd, denoiser ddpm | clean_acc | 0.0000 |" in out
    assert (
        "| certified: classifier clf, denoiser ddpm | certified_acc | 0.5000 "
        "| source clean, epsilon 0, method sigma=0.25, radius 0.25 | 2 |" in out
    )
    # every row of every table has the header's number of cells
    for block in out.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows}) <= 1, block


def test_agreement_lists_sets_of_one_run_only_and_fails_on_nothing_shared(tmp_path):
    fp32 = made_up_run(tmp_path / "fp32", "fp32", flips=0)
    bf16 = made_up_run(tmp_path / "bf16", "bf16", flips=0)
    for path in bf16.glob("predictions/clf/pgd/eps0.1/ddpm/sigma0.25/*"):
        path.unlink()
    done = agreement(fp32, bf16)
    assert done.returncode == 0, done.stderr
    assert "In one folder only (predictions): classifier clf, attack pgd, epsilon 0.1, denoiser ddpm, sigma 0.25" in (
        done.stdout
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    done = agreement(fp32, empty)
    assert done.returncode == 1 and "share no prediction, certification or table file" in done.stderr
    done = agreement(fp32, tmp_path / "nowhere")
    assert done.returncode == 2 and "nowhere: no such folder" in done.stderr


# --- the workflow's tables and report ------------------------------------------------------------


@pytest.mark.workflow
def test_every_table_and_the_report_of_a_run_name_its_precision(finished_run):
    results = finished_run / "results" / "digits"
    tables = sorted(results.glob("tables/**/*.parquet"))
    assert len(tables) > 5
    for path in tables:
        assert set(pd.read_parquet(path)["precision"]) == {"fp32"}, path  # the CPU's default, resolved
    for path in results.glob("tables/**/*.tex"):
        assert "(precision: fp32)}" in path.read_text(), path
    assert "Precision: <strong>fp32</strong>:" in (results / "report.html").read_text()
    done = agreement(results, results)
    assert done.returncode == 0, done.stderr
    assert "| **all denoised sets** |" in done.stdout
    assert set(re.findall(r"\((\d+) different\)", done.stdout)) == {"0"}

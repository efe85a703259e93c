"""Accuracy tables of the Safeguarding Attention experiments, and the time and memory each
pipeline stage used (from Snakemake benchmark files)."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dds import layout
from dds.io import DataFileError, read_table
from dds.precision import PRECISION, combined

ACCURACY_COLUMNS = [
    "classifier",
    "attack",
    "denoiser",
    "sigma",
    "epsilon",
    "clean_acc",
    "pgd_acc",
    "denoised_acc",
    "linf_max",
    "l2_max",
    "l2_mean",
    "n",
    PRECISION,  # of the row's predictions (clean, attacked, denoised): fp32, bf16, or "mixed: ..."
]
RESOURCE_COLUMNS = ["stage", "jobs", "total_s", "max_s", "peak_rss_mib"]
MODEL_COLUMNS = ["classifier", "attack", "denoiser"]  # one model setup: one table, one figure
NO_DEFENCE = "none"  # the `defence` of undefended rows in the defences, iterations and transfer tables


def defence_order(defences) -> list:
    """No defence first, then the defences by name."""
    return sorted(defences, key=lambda d: (d != NO_DEFENCE, d))


def _read_shards(paths: Sequence, columns: list[str], what: str) -> pd.DataFrame:
    """Concatenate shards sorted by idx, checking that no image appears twice."""
    if not paths:
        raise ValueError(f"{what}: no shards given")
    df = pd.concat([read_table(p, columns) for p in paths], ignore_index=True)
    duplicated = df["idx"][df["idx"].duplicated()]
    if len(duplicated):
        shards = [str(p) for p in paths]
        raise ValueError(f"{what}: image idx {int(duplicated.iloc[0])} appears more than once in {shards}")
    return df.sort_values("idx", ignore_index=True)


def _check_same_images(reference: pd.DataFrame, other: pd.DataFrame, what: str) -> None:
    """Every result must cover the same images with the same labels as the clean predictions."""
    if len(other) != len(reference):
        raise ValueError(f"{what}: {len(other)} images, but the clean predictions have {len(reference)}")
    if not np.array_equal(other["idx"].to_numpy(), reference["idx"].to_numpy()):
        extra = sorted(int(i) for i in set(other["idx"]) - set(reference["idx"]))[:5]
        raise ValueError(f"{what}: image idx set differs from the clean predictions (e.g. idx {extra} not among them)")
    if not np.array_equal(other["label"].to_numpy(), reference["label"].to_numpy()):
        raise ValueError(f"{what}: labels differ from the clean predictions for the same idx")


_PREDICTION_COLUMNS = ["idx", "label", "correct", PRECISION]


def _predictions(paths, clean: pd.DataFrame, what: str) -> pd.DataFrame:
    """The predictions of the shards, after checking they hold the clean set's images."""
    df = _read_shards(paths, _PREDICTION_COLUMNS, what)
    _check_same_images(clean, df, what)
    return df


def _norms(adversarial: dict, eps: float, clean: pd.DataFrame) -> tuple[float, float]:
    """(max linf, max l2, mean l2) of the measured perturbations at `eps`."""
    if eps not in adversarial:
        if eps == 0.0:
            return 0.0, 0.0, 0.0  # the clean set is unperturbed by definition
        raise ValueError(f"adversarial image shards at epsilon {eps} missing (have {sorted(adversarial)})")
    what = f"adversarial images at epsilon {eps}"
    shards = _read_shards(adversarial[eps], ["idx", "label", "linf", "l2"], what)
    _check_same_images(clean, shards, what)
    return float(shards["linf"].max()), float(shards["l2"].max()), float(shards["l2"].mean())


def accuracy_table(
    classifier: str,
    attack: str,
    denoiser: str,
    undefended: dict,
    denoised: dict,
    adversarial: dict,
) -> pd.DataFrame:
    """One row per (sigma, epsilon), sorted: clean, PGD and denoised accuracy, measured norms,
    and the precision the row's predictions were computed in.

    `undefended[eps]`: prediction shards on the adversarial set at eps (0.0 = clean set);
    `denoised[(sigma, eps)]`: prediction shards after denoising that set at sigma;
    `adversarial[eps]`: the adversarial image shards, read for their `linf`/`l2` columns
    (optional at eps 0.0, whose norms are 0).
    Raises ValueError when shards disagree on the images or a needed epsilon is missing.
    """
    if 0.0 not in undefended:
        raise ValueError(f"{classifier}: undefended predictions at epsilon 0.0 (the clean set) missing")
    if not denoised:
        raise ValueError(f"{classifier}: no denoised predictions given")
    clean = _read_shards(undefended[0.0], _PREDICTION_COLUMNS, f"{classifier} clean predictions")
    if clean.empty:
        raise ValueError(f"{classifier}: the clean prediction shards hold no images")
    clean_acc = float(clean["correct"].mean())
    per_eps = {}  # eps -> (undefended predictions, linf_max, l2_max, l2_mean); shared by every sigma
    rows = []
    for sigma, eps in sorted(denoised):
        if eps not in per_eps:
            if eps not in undefended:
                have = sorted(undefended)
                raise ValueError(f"{classifier}: undefended predictions at epsilon {eps} missing (have {have})")
            attacked = _predictions(undefended[eps], clean, f"{classifier} predictions at epsilon {eps}")
            per_eps[eps] = (attacked, *_norms(adversarial, eps, clean))
        attacked, linf_max, l2_max, l2_mean = per_eps[eps]
        what = f"{classifier} predictions denoised by {denoiser} at sigma {sigma}, epsilon {eps}"
        defended = _predictions(denoised[(sigma, eps)], clean, what)
        rows.append(
            {
                "classifier": classifier,
                "attack": attack,
                "denoiser": denoiser,
                "sigma": float(sigma),
                "epsilon": float(eps),
                "clean_acc": clean_acc,
                "pgd_acc": float(attacked["correct"].mean()),
                "denoised_acc": float(defended["correct"].mean()),
                "linf_max": linf_max,
                "l2_max": l2_max,
                "l2_mean": l2_mean,
                "n": len(clean),
                PRECISION: combined({*clean[PRECISION], *attacked[PRECISION], *defended[PRECISION]}),
            }
        )
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def _read_benchmark(path) -> pd.DataFrame:
    """The rows of one Snakemake benchmark TSV (several when the rule used `repeat`)."""
    try:
        df = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    except FileNotFoundError:
        raise DataFileError(f"{path}: benchmark file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: not a Snakemake benchmark TSV ({err})") from None
    missing = [c for c in ("s", "max_rss") if c not in df.columns]
    if missing:
        raise DataFileError(f"{path}: benchmark file lacks column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise DataFileError(f"{path}: benchmark file has a header but no data row")
    for column in ("s", "max_rss"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = df[column][values.isna() & df[column].notna()]
        if len(bad):
            raise DataFileError(f"{path}: column {column!r} holds the non-numeric value {bad.iloc[0]!r}")
        df[column] = values
    if df["s"].isna().any():
        raise DataFileError(f"{path}: column 's' (seconds) is empty")
    return df


def _worker_rss(benchmark, measured: float) -> float:
    """A job's peak memory (MiB): its job-server worker's when it has a usage record, else `measured`."""
    record = Path(layout.usage(benchmark))
    if not record.exists():
        return measured
    try:
        return float(json.loads(record.read_text())["max_rss_mib"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataFileError(f"{record}: not a usage record of the job server ({err}); delete it") from None


def stage_resources(benchmarks: dict) -> pd.DataFrame:
    """Per stage (rule): jobs, total and longest job wall time (s), peak resident memory (MiB).

    Snakemake's `max_rss` is labelled MB but computed as bytes / 1024**2, so it is MiB.
    It is NA for jobs too short to sample; those count for time only. A job the job server ran
    has its worker's peak memory in its usage record (Snakemake measured the script that waited
    for the worker): that one counts.
    """
    rows = []
    for stage, paths in benchmarks.items():
        frames = [_read_benchmark(p) for p in paths]
        seconds = pd.Series([f["s"].mean() for f in frames], dtype=float)  # repeats: a job's typical time
        rss = pd.Series([_worker_rss(p, f["max_rss"].max()) for p, f in zip(paths, frames)], dtype=float)
        rows.append(
            {
                "stage": stage,
                "jobs": len(paths),
                "total_s": float(seconds.sum()),
                "max_s": float(seconds.max()),
                "peak_rss_mib": float(rss.max()),
            }
        )
    return pd.DataFrame(rows, columns=RESOURCE_COLUMNS)

"""Certified accuracy from per-example certificates: per sigma, the best over sigmas (as
in Carlini et al.'s tables), the multi-scale cascade on the same draws, and whether the
certified radius covers an attack's measured L2 perturbation."""

import numpy as np
import pandas as pd

from dds.io import atomic_path
from dds.smoothing import bounds

TSV_COLUMNS = ["idx", "label", "predict", "radius", "correct", "time"]
CERTIFIED_COLUMNS = [
    "classifier",
    "denoiser",
    "source",
    "attack",
    "epsilon",
    "method",
    "sigma",
    "radius",
    "certified_acc",
    "smoothed_acc",
    "abstain_rate",
    "covered",
    "n",
]
MULTISCALE = "multi-scale"


def certified_accuracy(examples: pd.DataFrame, radius: float) -> float:
    """Fraction of examples predicted correctly with a certified radius of at least `radius`."""
    return float(((examples["correct"] == 1) & (examples["radius"] >= radius)).mean())


def write_tsv(examples: pd.DataFrame, path) -> None:
    """The customary per-example file: idx label predict radius correct time (correct 0/1 per row)."""
    with atomic_path(path) as tmp:
        examples[TSV_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def multiscale_examples(by_sigma: dict, alpha: float, p0: float) -> pd.DataFrame:
    """The cascade of `bounds.multiscale_certify` per image, on the counts that
    certification already drew at each sigma (the same draws, no new sampling)."""
    sigmas = sorted(by_sigma)
    frames = [by_sigma[s].sort_values("idx", ignore_index=True) for s in sigmas]
    for s, f in zip(sigmas, frames):
        if not np.array_equal(f["idx"].to_numpy(), frames[0]["idx"].to_numpy()):
            raise ValueError(f"certificates at sigma {s} cover other images than at sigma {sigmas[0]}")
    rows = []
    for i in range(len(frames[0])):
        cert = bounds.multiscale_certify(
            sigmas, [f["counts0"][i] for f in frames], [f["counts"][i] for f in frames], alpha, p0
        )
        label = int(frames[0]["label"][i])
        rows.append(
            {
                "idx": int(frames[0]["idx"][i]),
                "label": label,
                "predict": cert.predict,
                "radius": cert.radius,
                "correct": int(cert.predict == label),
                "stage": cert.stage,
            }
        )
    return pd.DataFrame(rows)


def _rows(examples: pd.DataFrame, radii, **keys) -> list[dict]:
    smoothed = (examples["smoothed_predict"] == examples["label"]).mean() if "smoothed_predict" in examples else np.nan
    covered = (
        ((examples["correct"] == 1) & (examples["radius"] >= examples["l2"])).mean() if "l2" in examples else np.nan
    )
    return [
        {
            **keys,
            "radius": float(r),
            "certified_acc": certified_accuracy(examples, r),
            "smoothed_acc": float(smoothed),
            "abstain_rate": float((examples["predict"] == bounds.ABSTAIN).mean()),
            "covered": float(covered),
            "n": len(examples),
        }
        for r in radii
    ]


def certified_table(
    classifier: str, denoiser: str, clean: dict, adversarial: dict, radii, multiscale: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Long table of certified accuracy at each radius.

    `clean`: sigma -> per-example certificates of the clean sample; `adversarial`:
    (attack, epsilon, sigma) -> certificates of that adversarial set, with its per-image `l2`
    perturbation norm (then `covered` = fraction correct with radius >= l2); `multiscale`:
    the cascade's per-example results (`multiscale_examples`), added as method 'multi-scale'.
    """
    keys = dict(classifier=classifier, denoiser=denoiser)
    rows = []
    for sigma in sorted(clean):
        rows += _rows(
            clean[sigma],
            radii,
            **keys,
            source="clean",
            attack="",
            epsilon=0.0,
            method=f"sigma={sigma:g}",
            sigma=float(sigma),
        )
    if multiscale is not None:
        rows += _rows(
            multiscale, radii, **keys, source="clean", attack="", epsilon=0.0, method=MULTISCALE, sigma=np.nan
        )
    for attack, epsilon, sigma in sorted(adversarial):
        rows += _rows(
            adversarial[(attack, epsilon, sigma)],
            radii,
            **keys,
            source="adversarial",
            attack=attack,
            epsilon=float(epsilon),
            method=f"sigma={sigma:g}",
            sigma=float(sigma),
        )
    return pd.DataFrame(rows, columns=CERTIFIED_COLUMNS)


def best_over_sigmas(table: pd.DataFrame) -> pd.DataFrame:
    """Per radius, the single sigma with the highest certified accuracy on the clean sample,
    with that sigma's clean accuracy (certified accuracy at radius 0), as in Carlini et al."""
    single = table[(table["source"] == "clean") & (table["method"] != MULTISCALE)]
    clean_acc = single[single["radius"] == 0].set_index("sigma")["certified_acc"]
    best = single.loc[single.groupby("radius")["certified_acc"].idxmax()]
    return pd.DataFrame(
        {
            "radius": best["radius"].to_numpy(),
            "sigma": best["sigma"].to_numpy(),
            "certified_acc": best["certified_acc"].to_numpy(),
            "clean_acc": clean_acc.reindex(best["sigma"]).to_numpy(),
        }
    )


def curve(examples: pd.DataFrame, grid) -> np.ndarray:
    """Certified accuracy at every radius of `grid`."""
    return np.array([certified_accuracy(examples, r) for r in grid])


def certified_curves(clean: dict, multiscale: pd.DataFrame, radii, points: int = 200) -> dict:
    """Certified-accuracy curves, label -> (radius grid, accuracy): per sigma of `clean` (sigma ->
    certificates) and of the multi-scale cascade, on one grid reaching a little past the largest
    radius certified or asked for in `radii`."""
    top = max(max(float(f["radius"].max()) for f in clean.values()), max(radii))
    grid = np.linspace(0, top * 1.05 or 1.0, points)
    curves = {f"sigma={s:g}": (grid, curve(examples, grid)) for s, examples in clean.items()}
    curves[MULTISCALE] = (grid, curve(multiscale, grid))
    return curves

"""Made-up results of a whole run, each table in the workflow's format, with seeded random
accuracies (so that the best sigma differs between classifiers), for the tests of the report's
summary (test_findings.py) and of the page in a browser (test_report_browser.py)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from dds.reporting.tables import ACCURACY_COLUMNS
from dds.smoothing.certified import certified_table

CLASSIFIERS = ["vit", "resnet"]  # config order, not alphabetical order
SIGMAS = [0.25, 0.5, 1.0]
EPSILONS = [0.0, 0.05, 0.1]
RADII = [0.0, 0.25, 0.5, 1.0]
N = 40
CALIBRATION = {"steps": 4, "batch_size": 2, "draws": 2, "lr": 1e-5}
CALIBRATION_WEIGHTS = {"brier_weight": 1.0, "anti_weight": 0.5, "denoising_weight": 1.0}


def made_up_config(**changes) -> dict:
    """The config of the made-up run: two classifiers, a DDPM and its calibration for resnet,
    one PGD attack, every section enabled; `changes`: top-level keys replaced."""
    config = {
        "dataset": {"name": "digits", "eval_size": N},
        "classifiers": {name: {} for name in CLASSIFIERS},
        "denoisers": {
            "ddpm": {"kind": "ddpm"},
            "ddpm-cal": {
                "kind": "calibrated",
                "base": "ddpm",
                "classifier": "resnet",
                **CALIBRATION,
                **CALIBRATION_WEIGHTS,
            },
        },
        "attacks": {"pgd": {"method": "pgd_linf", "epsilons": EPSILONS[1:]}},
        "certify": {"enabled": True, "n0": 10, "n": 100, "alpha": 0.001, "num_images": 20, "p0": 0.5},
        "blur": {"enabled": True, "kernel_size": 5, "sigma": 1.0},
        "iterations": {"enabled": True, "attack": "pgd", "epsilon": 0.1, "steps": [5, 20], "num_images": 20},
        "adaptive": {"enabled": True, "attack": "pgd", "targets": ["single", "smoothed"], "num_images": 20},
        "transfer": {"enabled": True},
        "attention": {"enabled": True},
        "purification": {"enabled": False},
        "report": {"headline_radius": 0.25},
    }
    return {**config, **changes}


def _accuracy(rng, size=None):
    """Accuracies as a sample of N images gives them: multiples of 1/N."""
    return rng.integers(0, N + 1, size) / N


def made_up_summary(rng) -> pd.DataFrame:
    rows = []
    for classifier in CLASSIFIERS:
        clean = _accuracy(rng)
        pgd = {eps: clean if eps == 0 else _accuracy(rng) for eps in EPSILONS}
        for denoiser in ("ddpm", "ddpm-cal"):
            for sigma in SIGMAS:
                for eps in EPSILONS:
                    rows.append(
                        {
                            "classifier": classifier,
                            "attack": "pgd",
                            "denoiser": denoiser,
                            "sigma": sigma,
                            "epsilon": eps,
                            "clean_acc": clean,
                            "pgd_acc": pgd[eps],
                            "denoised_acc": _accuracy(rng),
                            "linf_max": eps,
                            "l2_max": 10 * eps,
                            "l2_mean": 8 * eps,
                            "n": N,
                            "precision": "fp32",
                        }
                    )
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


def _certificates(rng, n=20) -> pd.DataFrame:
    correct = rng.random(n) < 0.8
    return pd.DataFrame(
        {
            "idx": np.arange(n),
            "label": np.zeros(n, int),
            "predict": np.where(correct, 0, 1),
            "radius": rng.uniform(0, 1.2, n).round(3),
            "correct": correct.astype(int),
            "smoothed_predict": np.where(rng.random(n) < 0.9, 0, 1),
        }
    )


def made_up_certified(rng) -> dict:
    """(classifier, denoiser) -> certified table: ddpm for every classifier, ddpm-cal for resnet."""
    pairs = [(c, "ddpm") for c in CLASSIFIERS] + [("resnet", "ddpm-cal")]
    tables = {}
    for c, d in pairs:
        clean = {s: _certificates(rng) for s in SIGMAS}
        cascade = _certificates(rng).drop(columns="smoothed_predict")  # the cascade has no smoothed prediction
        tables[c, d] = certified_table(c, d, clean, {}, RADII, cascade).assign(precision="fp32")
    return tables


def made_up_adaptive(rng) -> pd.DataFrame:
    """The adaptive table (dds.reporting.attack_tables.adaptive_table's columns); the fixed-noise
    diagnostic lowest of all, so that the summary must leave it out."""
    rows = []
    for classifier in CLASSIFIERS:
        for sigma in SIGMAS[:2]:
            rows.append((classifier, sigma, 0.0, "clean", _accuracy(rng)))
            for eps in EPSILONS[1:]:
                for kind in ("unaware", "adaptive-single", "adaptive-smoothed"):
                    rows.append((classifier, sigma, eps, kind, _accuracy(rng)))
                rows.append((classifier, sigma, eps, "adaptive-fixed-noise", 0.0))
    table = pd.DataFrame(rows, columns=["classifier", "sigma", "epsilon", "attack", "acc_draws"])
    attacked = table["attack"] != "clean"
    adaptive = table["attack"].str.startswith("adaptive-")
    return table.assign(
        denoiser="ddpm",
        attack_name="pgd",
        acc_single=table["acc_draws"],
        acc_draws_std=0.01,
        acc_majority=table["acc_draws"],
        n=20,
        linf_max=table["epsilon"],
        l2_mean=8 * table["epsilon"],
        t_star=(table["sigma"] * 400).astype(int),
        eval_draws=4,
        steps=pd.Series(5, index=table.index, dtype="Int64").where(attacked),
        step_size=(table["epsilon"] / 2).where(attacked),
        eot_draws=pd.Series(4, index=table.index, dtype="Int64").where(adaptive),
        straight_through=pd.Series(True, index=table.index, dtype="boolean").where(adaptive),
        precision="fp32",
    )


def made_up_blur(rng) -> dict:
    """Classifier -> blur table (dds.evaluation.blur.blur_table's columns)."""
    tables = {}
    for classifier in CLASSIFIERS:
        rows = [("attack", "pgd", eps, 0.0) for eps in EPSILONS] + [("noise", "", 0.0, 0.125)]
        tables[classifier] = pd.DataFrame(
            [
                {
                    "noise_level": noise,
                    "source": source,
                    "attack": attack,
                    "epsilon": eps,
                    "classifier": classifier,
                    **{k: _accuracy(rng) for k in ("acc_ns", "acc_ss", "acc_ds", "acc_maj", "reject_rate")},
                    "n": N,
                    "precision": "fp32",
                }
                for source, attack, eps, noise in rows
            ]
        )
    return tables


def made_up_iterations(rng) -> pd.DataFrame:
    rows = [
        {"classifier": c, "denoiser": "ddpm", "epsilon": 0.1, "steps": steps, "defence": d, "accuracy": _accuracy(rng)}
        for c in CLASSIFIERS
        for steps in (5, 20)
        for d in ("none", "sigma=0.25", "sigma=0.5")
    ]
    return pd.DataFrame(rows)


def made_up_transfer(rng) -> pd.DataFrame:
    rows = [
        {"attack": "pgd", "denoiser": "ddpm", "source": s, "target": t, "epsilon": eps, "defence": d}
        for s in CLASSIFIERS
        for t in CLASSIFIERS
        for eps in EPSILONS
        for d in ("none", "sigma=0.25")
    ]
    return pd.DataFrame(rows).assign(accuracy=_accuracy(rng, len(rows)), n=N, precision="fp32")


def made_up_attention(rng) -> pd.DataFrame:
    rows = [(c, "adversarial", eps, np.nan) for c in CLASSIFIERS for eps in EPSILONS[1:]]
    rows += [(c, "denoised", eps, s) for c in CLASSIFIERS for eps in EPSILONS for s in SIGMAS[:2]]
    table = pd.DataFrame(rows, columns=["classifier", "condition", "epsilon", "sigma"])
    return table.assign(
        denoiser="ddpm",
        method="gradcam",
        spearman_mean=rng.uniform(-1, 1, len(table)).round(4),
        spearman_std=0.2,
        topk_iou_mean=rng.uniform(0, 1, len(table)).round(4),
        images=20,
    )


def made_up_results(seed: int = 0) -> SimpleNamespace:
    """Every table of the made-up run, from one seed."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        summary=made_up_summary(rng),
        certified=made_up_certified(rng),
        adaptive=made_up_adaptive(rng),
        blur=made_up_blur(rng),
        iterations=made_up_iterations(rng),
        transfer=made_up_transfer(rng),
        attention=made_up_attention(rng),
    )


def placeholder_figure(path, title: str) -> None:
    """A small line plot standing in for a figure whose own code wants fuller tables."""
    from dds.reporting.plotting import new_figure, save_figure

    fig = new_figure((4, 3))
    ax = fig.subplots()
    ax.plot([0, 0.05, 0.1], [0.9, 0.6, 0.3], marker="o")
    ax.set_title(title)
    save_figure(fig, path)


def write_run(results: SimpleNamespace, config: dict) -> dict:
    """Write the made-up run's tables, LaTeX files, figures, model records and a benchmark file
    where the workflow puts them, relative to the working directory, for the sections `config`
    enables; return the report rule's inputs (the keyword arguments of dds.pipeline.report.report)."""
    import json

    import torch

    from dds import layout
    from dds.evaluation.blur import compare_defences
    from dds.io import write_table
    from dds.reporting import figures

    def path(pattern, **keys):
        out = Path(layout.fill(pattern, dataset=config["dataset"]["name"], **keys))
        out.parent.mkdir(parents=True, exist_ok=True)
        return str(out)

    def table(df, pattern, tex=None, **keys):
        write_table(df, path(pattern, **keys))
        if tex is not None:
            Path(path(tex, **keys)).write_text("% made up\n")
        return path(pattern, **keys)

    s = results.summary
    inputs = {"summary": table(s, layout.SUMMARY), "template": "report.html", "config": config, "accuracy": []}
    for (c, a, d), rows in s.groupby(["classifier", "attack", "denoiser"]):
        table(rows, layout.TABLE, layout.TABLE_TEX, classifier=c, attack=a, denoiser=d)
        inputs["accuracy"].append(path(layout.ACCURACY_PNG, classifier=c, attack=a, denoiser=d))
        figures.accuracy_figure(rows, inputs["accuracy"][-1], None)
    inputs["comparison"] = path(layout.COMPARISON_PNG)
    figures.comparison_figure(s, inputs["comparison"], None)
    inputs["examples"] = path(layout.EXAMPLES_FIGURE)
    figures.examples_figure(
        [("clean", torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)))], inputs["examples"]
    )
    inputs["classifier_metrics"] = [path(layout.CLASSIFIER_METRICS, classifier=c) for c in config["classifiers"]]
    inputs["denoiser_metrics"] = [path(layout.DENOISER_METRICS, denoiser=d) for d in config["denoisers"]]
    for record in inputs["classifier_metrics"] + inputs["denoiser_metrics"]:
        Path(record).write_text(json.dumps({"heldout_accuracy": 0.9, "epochs": 2}))
    if config["certify"]["enabled"]:
        inputs["certified"], inputs["certified_png"] = [], []
        for (c, d), cert in results.certified.items():
            inputs["certified"].append(table(cert, layout.CERTIFIED, layout.CERTIFIED_TEX, classifier=c, denoiser=d))
            inputs["certified_png"].append(path(layout.CERTIFIED_PNG, classifier=c, denoiser=d))
            clean = cert[cert["source"] == "clean"]
            curves = {m: (g["radius"].to_numpy(), g["certified_acc"].to_numpy()) for m, g in clean.groupby("method")}
            figures.certified_figure(curves, f"{c}, denoiser {d}", inputs["certified_png"][-1], None)
    if config["blur"]["enabled"]:
        inputs["blur"] = [table(b, layout.BLUR_TABLE, layout.BLUR_TEX, classifier=c) for c, b in results.blur.items()]
        inputs["defences_png"] = path(layout.DEFENCES_PNG)
        figures.defences_figure(compare_defences(s, pd.concat(results.blur.values())), inputs["defences_png"], None)
    for section, pattern, tex, png in [
        ("iterations", layout.ITERATIONS_TABLE, None, layout.ITERATIONS_PNG),
        ("adaptive", layout.ADAPTIVE_TABLE, layout.ADAPTIVE_TEX, layout.ADAPTIVE_PNG),
        ("transfer", layout.TRANSFER_TABLE, None, layout.TRANSFER_PNG),
    ]:
        if config[section]["enabled"]:
            inputs[f"{section}_table"] = table(getattr(results, section), pattern, tex)
            inputs[f"{section}_png"] = path(png)
            placeholder_figure(inputs[f"{section}_png"], section)
    if config["attention"]["enabled"]:
        inputs["attention_table"] = table(results.attention, layout.ATTENTION_TABLE)
        inputs["attention_png"] = [
            path(layout.ATTENTION_PNG, classifier=c, attack="pgd", denoiser="ddpm") for c in CLASSIFIERS
        ]
        for png in inputs["attention_png"]:
            placeholder_figure(png, "attention")
    benchmark = Path(path(layout.benchmark(layout.SUMMARY)))
    benchmark.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n1.5\t0:00:01\t100\t1\t1\t1\t0\t0\t1\t1\n"
    )
    inputs["accuracy_summary"] = [str(benchmark)]
    inputs["html"] = path(layout.REPORT)
    return inputs

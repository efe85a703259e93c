"""The report's sections beyond the accuracy tables: each a title, a caption and its tables."""

import logging

import pandas as pd

from dds import layout
from dds.io import read_table
from dds.reporting import attack_tables
from dds.reporting.cells import cell
from dds.smoothing import certified as certified_mod

log = logging.getLogger(__name__)


def certified_section(config: dict) -> dict:
    """Per (classifier, denoiser): certified accuracy per method and radius on the clean
    sample, the best single sigma per radius (its clean accuracy in parentheses), and the
    adversarial sets' coverage."""
    dataset, spec = config["dataset"]["name"], config["certify"]
    out = []
    for c in config["classifiers"]:
        for d in config["denoisers"]:
            table = read_table(layout.fill(layout.CERTIFIED, dataset=dataset, classifier=c, denoiser=d))
            clean = table[table["source"] == "clean"]
            radii = sorted(clean["radius"].unique())
            rows = [[method, *(cell(a) for a in g.sort_values("radius")["certified_acc"]),
                     cell(g["smoothed_acc"].iloc[0]), cell(g["abstain_rate"].iloc[0])]
                    for method, g in clean.groupby("method", sort=False)]
            best = certified_mod.best_over_sigmas(table)
            rows.append(["best sigma", *(f"{b.certified_acc:.3f} ({b.clean_acc:.3f}, sigma={b.sigma:g})"
                                         for b in best.itertuples()), "", ""])
            out.append({"caption": f"{c}, denoiser {d}: certified accuracy on the clean sample",
                        "columns": ["Method", *(f"r={r:g}" for r in radii), "PREDICT acc.", "abstain"], "rows": rows})
            attacked = table[(table["source"] == "adversarial") & (table["radius"] == radii[0])]
            if len(attacked):
                out.append({"caption": f"{c}, denoiser {d}: certification of adversarial sets",
                            "columns": ["Attack", "Epsilon", "Method", "certified acc. (r=0)", "radius covers L2"],
                            "rows": [[r.attack, f"{r.epsilon:g}", r.method, cell(r.certified_acc), cell(r.covered)]
                                     for r in attacked.itertuples()]})
    return {"title": "Certification", "tables": out,
            "caption": f"CERTIFY of Cohen et al. through the one-shot denoiser: n0={spec['n0']}, n={spec['n']}, "
                       f"alpha={spec['alpha']:g}, first {spec['num_images']} evaluation images; multi-scale: the "
                       f"cascade of Jeong and Shin over all sigmas on the same draws (p0={spec['p0']:g})."}


def blur_section(config: dict) -> dict:
    """The blur-majority tables: per noise level (the blog's table) and per attack epsilon."""
    dataset, spec = config["dataset"]["name"], config["blur"]
    out = []
    for c in config["classifiers"]:
        table = read_table(layout.fill(layout.BLUR_TABLE, dataset=dataset, classifier=c))
        out.append({"caption": f"{c}: blur majority under Gaussian noise and under attack",
                    "columns": ["Source", "Noise level", "Epsilon", "Acc_NS", "Acc_SS", "Acc_DS", "Acc_Maj",
                                "Reject rate"],
                    "rows": [[f"{r.source} {r.attack}".strip(), f"{r.noise_level:g}", f"{r.epsilon:g}",
                              *(cell(v) for v in (r.acc_ns, r.acc_ss, r.acc_ds, r.acc_maj, r.reject_rate))]
                             for r in table.itertuples()]})
    return {"title": "Gaussian-blur majority", "tables": out,
            "caption": f"Predictions on the image (NS), blurred once (SS) and twice (DS) with a "
                       f"{spec['kernel_size']}x{spec['kernel_size']} Gaussian kernel of sigma {spec['sigma']:g}; "
                       "Acc_Maj is the accuracy of the majority vote among the images it does not reject."}


def iterations_section(config: dict) -> dict:
    """Accuracy per classifier and PGD step count, undefended and denoised at each sigma."""
    spec = config["iterations"]
    table = read_table(layout.fill(layout.ITERATIONS_TABLE, dataset=config["dataset"]["name"]))
    defences = sorted(table["defence"].unique(), key=lambda d: (d != "none", d))
    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"]):
        wide = rows.pivot_table(index="steps", columns="defence", values="accuracy")
        out.append({"caption": f"{c}, denoiser {d}: accuracy against PGD iterations",
                    "columns": ["Steps", *(f"{x}" for x in defences)],
                    "rows": [[str(steps), *(cell(wide.loc[steps].get(x)) for x in defences)] for steps in wide.index]})
    return {"title": "Accuracy against PGD iterations", "tables": out,
            "caption": f"The attack '{spec['attack']}' rerun with {', '.join(map(str, spec['steps']))} steps at "
                       f"epsilon {spec['epsilon']:g} on the first {spec['num_images']} evaluation images: undefended "
                       "(none) and denoised at each sigma with the noise draws of the main tables."}


ADAPTIVE_COLUMNS = {"clean": "clean", "unaware": "unaware PGD", "adaptive-single": "adaptive (single target)",
                    "adaptive-smoothed": "adaptive (smoothed target)"}


def adaptive_section(config: dict) -> dict:
    """Per (classifier, denoiser): one-draw and smoothed accuracy, clean, under the unaware
    PGD and under the adaptive attack (each target), per sigma and epsilon."""
    spec = config["adaptive"]
    table = read_table(layout.fill(layout.ADAPTIVE_TABLE, dataset=config["dataset"]["name"]))
    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"], sort=False):
        for metric, what in (("acc_single", "one-draw denoised accuracy"), ("acc_smoothed", "smoothed accuracy (PREDICT)")):
            wide = attack_tables.adaptive_wide(rows, metric)
            clean = wide.groupby("sigma")["clean"].max() if "clean" in wide else None
            kinds = [k for k in ADAPTIVE_COLUMNS if k in wide.columns and k != "clean"]
            attacked = wide[wide["epsilon"] > 0]
            out.append({"caption": f"{c}, denoiser {d}: {what}",
                        "columns": ["Sigma", "Epsilon", "clean", *(ADAPTIVE_COLUMNS[k] for k in kinds)],
                        "rows": [[f"{r['sigma']:g}", f"{r['epsilon']:g}",
                                  cell(clean.get(r["sigma"]) if clean is not None else None),
                                  *(cell(r[k]) for k in kinds)] for r in attacked.to_dict("records")]})
    return {"title": "Adaptive attack", "tables": out,
            "caption": f"PGD of attack '{spec['attack']}' (same epsilon, steps and step size as the unaware attack) "
                       f"through the noise, the one-shot denoiser and the classifier, expectation over "
                       f"{spec['eot_draws']} noise draws per step; target single: the one-draw defended classifier, "
                       "smoothed: the soft smoothed classifier. Evaluated on the first "
                       f"{min(spec['num_images'], config['dataset']['eval_size'])} evaluation images with the main "
                       f"tables' noise draw (one draw) and with PREDICT on {spec['vote_draws']} fresh draws "
                       f"(alpha={spec['alpha']:g}; abstentions count as errors). The unaware attack is made on the "
                       "bare classifier."}


def transfer_section(config: dict) -> dict:
    """Per defence: accuracy of each target classifier on each source's adversarial examples."""
    table = read_table(layout.fill(layout.TRANSFER_TABLE, dataset=config["dataset"]["name"]))
    targets = sorted(table["target"].unique())
    out = []
    for (attack, denoiser, defence), rows in table.groupby(["attack", "denoiser", "defence"], sort=False):
        body = []
        for (eps, source), cells in rows.groupby(["epsilon", "source"]):
            acc = cells.set_index("target")["accuracy"]
            body.append([f"{eps:g}", source, *(cell(acc.get(t)) for t in targets)])
        where = "no defence" if defence == "none" else f"denoised by {denoiser} at {defence}"
        out.append({"caption": f"{attack}, {where}: accuracy of each target (columns) on each source's examples",
                    "columns": ["Epsilon", "Source", *targets], "rows": body})
    return {"title": "Transfer between classifiers", "tables": out,
            "caption": "Adversarial examples made on the source classifier, classified by every classifier, "
                       "undefended and after denoising (the same denoised images as the main tables); "
                       "source = target is the white-box attack."}


def attention_section(config: dict) -> dict:
    """Per classifier and method: rank correlation and top-k overlap with the clean maps."""
    table = read_table(layout.fill(layout.ATTENTION_TABLE, dataset=config["dataset"]["name"]))
    out = []
    for (c, method), rows in table.groupby(["classifier", "method"], sort=False):
        out.append({"caption": f"{c}: {'Grad-CAM' if method == 'gradcam' else 'CBAM spatial attention'} against "
                               "the clean image's map",
                    "columns": ["Condition", "Epsilon", "Sigma", "Spearman (mean)", "Spearman (sd)", "top-20% IoU",
                                "images"],
                    "rows": [[r.condition, f"{r.epsilon:g}", "" if pd.isna(r.sigma) else f"{r.sigma:g}",
                              cell(r.spearman_mean), cell(r.spearman_std), cell(r.topk_iou_mean),
                              str(r.images)]
                             for r in rows.sort_values(["condition", "epsilon", "sigma"]).itertuples()]})
    return {"title": "Attention under attack and denoising", "tables": out,
            "caption": "Per image, Spearman's rank correlation and the overlap (IoU) of the 20% most attended pixels "
                       "between the map of the clean image and the map of its attacked or denoised version (1: the "
                       "classifier looks at the same places); Grad-CAM explains the true class. Denoised rows at "
                       "epsilon 0 are the clean images denoised."}


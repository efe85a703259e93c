"""What the HTML report shows, built from the files the report rule declares: the models'
metrics, the tables of the sections (read once, for the sections and for the headline), the
figures (title, PNG path, caption) and the sections themselves. Each file's classifier,
denoiser, ... comes from its own path (dds.layout.parse)."""

from dds import layout
from dds.io import read_json, read_table
from dds.reporting import calibration, paper, purification, sections
from dds.reporting.blocks import frame_table, make_section, table_files
from dds.reporting.tables import MODEL_COLUMNS


def by_keys(paths, pattern: str, config: dict, *keys: str) -> dict:
    """The one path of `pattern` for each value of `keys` (layout.group), names matched against the
    config's (model names may hold the "-" that joins them in figure names)."""
    choices = {"classifier": config["classifiers"], "denoiser": config["denoisers"], "attack": config["attacks"]}
    return {key: path for key, (path,) in layout.group(paths, pattern, *keys, choices=choices).items()}


def models(classifier_metrics, denoiser_metrics) -> list:
    """{"name", "kind", "metrics"} of every trained or fetched model, in the order given."""
    return [
        {
            "name": layout.parse(layout.CLASSIFIER_METRICS, p)["classifier"],
            "kind": "classifier",
            "metrics": read_json(p),
        }
        for p in classifier_metrics
    ] + [
        {"name": layout.parse(layout.DENOISER_METRICS, p)["denoiser"], "kind": "denoiser", "metrics": read_json(p)}
        for p in denoiser_metrics
    ]


def comparison_figure(comparison) -> tuple:
    return (
        "Classifiers compared",
        comparison,
        "Denoised accuracy against epsilon, one panel per sigma, one line per classifier; dashed: no defence.",
    )


def defences_figure(defences_png) -> tuple:
    return (
        "Defences compared",
        defences_png,
        "Accuracy against epsilon, one panel per classifier: no defence (dashed), diffusion denoising at each "
        "sigma and the blur defences.",
    )


def accuracy_figures(summary, accuracy, examples, config: dict, comparison=None) -> list:
    """The comparison figure (when the summary does not show it), the examples, then each model
    setup's accuracy figure in the summary's order."""
    pngs = by_keys(accuracy, layout.ACCURACY_PNG, config, *MODEL_COLUMNS)
    figures = [comparison_figure(comparison)] if comparison is not None else []
    figures.append(("Examples", examples, "Clean images, attacked at the largest epsilon, and denoised at each sigma."))
    figures += [
        (
            f"{k.classifier}: {k.attack}, denoiser {k.denoiser}",
            pngs[tuple(k)],
            "Accuracy against epsilon: one line per sigma after denoising; dashed: no defence.",
        )
        for k in summary[MODEL_COLUMNS].drop_duplicates().itertuples(index=False)
    ]
    return figures


def compare_with_paper(summary, reference, config: dict):
    """Our accuracies beside the published table `reference` (settings: config key report.reference)."""
    published = config["report"]["reference"]
    return paper.compare(
        summary,
        paper.read_reference(reference),
        config["dataset"]["name"],
        published["classifiers"],
        published["attack"],
        published["denoiser"],
        published["n"],
    )


def read_certified(paths, config: dict) -> dict:
    """(classifier, denoiser) -> its certified table, in config order."""
    tables = by_keys(paths, layout.CERTIFIED, config, "classifier", "denoiser")
    # a calibrated denoiser is certified with its own classifier only
    return {
        (c, d): read_table(tables[c, d]) for c in config["classifiers"] for d in config["denoisers"] if (c, d) in tables
    }


def read_blur(paths, config: dict) -> dict:
    """Classifier -> its blur table, in config order."""
    tables = by_keys(paths, layout.BLUR_TABLE, config, "classifier")
    return {c: read_table(tables[c]) for c in config["classifiers"] if c in tables}


def certified_part(tables: dict, pngs, config: dict) -> dict:
    """The certification section with its figures, per classifier and denoiser of `tables` (read_certified)."""
    pngs = by_keys(pngs, layout.CERTIFIED_PNG, config, "classifier", "denoiser")
    figures = [
        (
            f"Certified accuracy: {c}, denoiser {d}",
            pngs[(c, d)],
            "Certified accuracy against L2 radius, one curve per sigma; dashed: multi-scale.",
        )
        for c, d in tables
    ]
    return sections.certified_section(tables, config["certify"], figures)


def iterations_part(table, png, config: dict) -> dict:
    """The PGD-iterations section and its figure."""
    section = sections.iterations_section(table, config["iterations"])
    section["figures"] = [("Accuracy against PGD iterations", png, section["caption"])]
    return section


def adaptive_part(table, png, config: dict) -> dict:
    """The adaptive-attack section and its figure."""
    section = sections.adaptive_section(table, config["adaptive"], config["dataset"]["eval_size"])
    section["figures"] = [("Adaptive attack against unaware PGD", png, section["caption"])]
    return section


def transfer_part(table, png) -> dict:
    """The transfer section and its figure."""
    section = sections.transfer_section(table)
    section["figures"] = [("Transfer between classifiers", png, section["caption"])]
    return section


def attention_part(table, pngs, config: dict) -> dict:
    """The attention section and each (classifier, denoiser)'s figure, in config order."""
    pngs = by_keys(pngs, layout.ATTENTION_PNG, config, "classifier", "denoiser")
    figures = [
        (
            f"Attention: {c}" + (f", denoiser {d}" if len(config["denoisers"]) > 1 else ""),
            pngs[(c, d)],
            "Grad-CAM of the true class on the same images clean, attacked at each epsilon and denoised "
            "at each sigma (from the largest epsilon).",
        )
        for c in config["classifiers"]
        for d in config["denoisers"]
        if (c, d) in pngs  # a calibrated denoiser is mapped with its own classifier only
    ]
    return sections.attention_section(table, figures)


def calibration_part(summary, certified: dict, config: dict) -> dict:
    """Each calibrated denoiser against its base: from the accuracy summary and the certified
    tables ((classifier, denoiser) -> table) of its classifier with both, else accuracy only."""
    calibrated = {n: s for n, s in config["denoisers"].items() if s["kind"] == "calibrated"}
    pairs = []
    for name, spec in calibrated.items():
        mine, theirs = certified.get((spec["classifier"], name)), certified.get((spec["classifier"], spec["base"]))
        certificates = (theirs, mine) if mine is not None and theirs is not None else (None, None)
        pairs.append((name, spec["base"], spec["classifier"], *certificates))
    return calibration.calibration_section(summary, pairs, calibrated)


def purification_part(table, png) -> dict:
    """One-shot denoising beside multi-step purification: the stage's figure and its table."""
    caption = (
        "One-shot denoising beside multi-step purification (K reverse diffusion steps from t*) on the same images: "
        "accuracy clean, under the unaware PGD, the adaptive attack with exact gradients through the chain and "
        "BPDA (mean over the evaluation draws), and certified accuracy at each radius (docs/science.md §1.7)."
    )
    return make_section(
        "purification",
        "Multi-step purification",
        caption,
        [
            frame_table(
                "One-shot and multi-step purification",
                purification.display_table(table),
                table_files(layout.PURIFICATION_TABLE),
            )
        ],
        [("One-shot against multi-step purification", png, caption)],
        nav="Purification",
    )

"""What the HTML report shows, built from the files the report rule declares: the models'
metrics, the figures (title, PNG path, caption) and the sections beyond the accuracy tables.
Each file's classifier, denoiser, ... comes from its own path (dds.layout.parse)."""

from dds import layout
from dds.io import read_json, read_table
from dds.reporting import calibration, paper, sections
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


def accuracy_figures(summary, comparison, accuracy, examples, config: dict) -> list:
    """The comparison figure, each model setup's accuracy figure (in the summary's order), the examples."""
    pngs = by_keys(accuracy, layout.ACCURACY_PNG, config, *MODEL_COLUMNS)
    figures = [
        (
            "Classifiers compared",
            comparison,
            "Denoised accuracy against epsilon, one panel per sigma, one line per classifier.",
        )
    ]
    figures += [
        (
            f"{k.classifier}: {k.attack}, denoiser {k.denoiser}",
            pngs[tuple(k)],
            "Accuracy against epsilon: one line per sigma after denoising; dashed: no defence.",
        )
        for k in summary[MODEL_COLUMNS].drop_duplicates().itertuples(index=False)
    ]
    figures.append(("Examples", examples, "Clean images, attacked at the largest epsilon, and denoised at each sigma."))
    return figures


def reference_part(summary, reference, config: dict) -> tuple[dict, list]:
    """Our accuracies beside the published table `reference` (settings: config key report.reference)."""
    published = config["report"]["reference"]
    compared = paper.compare(
        summary,
        paper.read_reference(reference),
        config["dataset"]["name"],
        published["classifiers"],
        published["attack"],
        published["denoiser"],
        published["n"],
    )
    return paper.comparison_section(compared, published["source"], published["n"]), []


def certified_part(tables, pngs, config: dict) -> tuple[dict, list]:
    """The certification section and figures, per classifier and denoiser in config order."""
    tables = by_keys(tables, layout.CERTIFIED, config, "classifier", "denoiser")
    # a calibrated denoiser is certified with its own classifier only
    order = [(c, d) for c in config["classifiers"] for d in config["denoisers"] if (c, d) in tables]
    pngs = by_keys(pngs, layout.CERTIFIED_PNG, config, "classifier", "denoiser")
    section = sections.certified_section({k: read_table(tables[k]) for k in order}, config["certify"])
    figures = [
        (
            f"Certified accuracy: {c}, denoiser {d}",
            pngs[(c, d)],
            "Certified accuracy against L2 radius, one curve per sigma; dashed: multi-scale.",
        )
        for c, d in order
    ]
    return section, figures


def blur_part(tables, defences_png, config: dict) -> tuple[dict, list]:
    """The blur-majority section (per classifier in config order) and the defences figure."""
    tables = by_keys(tables, layout.BLUR_TABLE, config, "classifier")
    section = sections.blur_section({c: read_table(tables[c]) for c in config["classifiers"]}, config["blur"])
    return section, [
        (
            "Defences compared",
            defences_png,
            "Accuracy against epsilon with no defence, diffusion denoising and blur majority.",
        )
    ]


def iterations_part(table, png, config: dict) -> tuple[dict, list]:
    """The PGD-iterations section and its figure."""
    section = sections.iterations_section(read_table(table), config["iterations"])
    return section, [("Accuracy against PGD iterations", png, section["caption"])]


def adaptive_part(table, png, config: dict) -> tuple[dict, list]:
    """The adaptive-attack section and its figure."""
    section = sections.adaptive_section(read_table(table), config["adaptive"], config["dataset"]["eval_size"])
    return section, [("Adaptive attack against unaware PGD", png, section["caption"])]


def transfer_part(table, png) -> tuple[dict, list]:
    """The transfer section and its figure."""
    section = sections.transfer_section(read_table(table))
    return section, [("Transfer between classifiers", png, section["caption"])]


def attention_part(table, pngs, config: dict) -> tuple[dict, list]:
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
    return sections.attention_section(read_table(table)), figures


def calibration_part(summary, certified, config: dict) -> tuple[dict, list]:
    """Each calibrated denoiser against its base: from the accuracy summary and the certified
    tables of its classifier with both (certification enabled), else accuracy only."""
    tables = by_keys(certified, layout.CERTIFIED, config, "classifier", "denoiser")
    calibrated = {n: s for n, s in config["denoisers"].items() if s["kind"] == "calibrated"}
    pairs = []
    for name, spec in calibrated.items():
        mine, theirs = tables.get((spec["classifier"], name)), tables.get((spec["classifier"], spec["base"]))
        certificates = (read_table(theirs), read_table(mine)) if mine and theirs else (None, None)
        pairs.append((name, spec["base"], spec["classifier"], *certificates))
    return calibration.calibration_section(summary, pairs, calibrated), []

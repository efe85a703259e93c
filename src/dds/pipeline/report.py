"""The HTML report."""

import logging
import os
from pathlib import Path

from dds.io import read_table
from dds.precision import precision_of
from dds.reporting import contents, findings, paper, sections
from dds.reporting import html as report_html
from dds.reporting.sentences import sentences
from dds.reporting.tables import stage_resources

log = logging.getLogger(__name__)

# the config sections whose tables the report shows when enabled
SECTIONS = ("certify", "blur", "iterations", "adaptive", "transfer", "attention", "purification")


def report(
    *,
    summary,
    comparison,
    examples,
    template,
    accuracy,
    classifier_metrics,
    denoiser_metrics,
    html,
    config: dict,
    certified=(),
    certified_png=(),
    blur=(),
    defences_png=None,
    iterations_table=None,
    iterations_png=None,
    adaptive_table=None,
    adaptive_png=None,
    transfer_table=None,
    transfer_png=None,
    attention_table=None,
    attention_png=(),
    purification_table=None,
    purification_png=None,
    reference=None,
    **benchmarks,
) -> None:
    """The HTML report: the headline numbers and a sentence per section, then the sections (the
    comparison with the paper first), time and peak memory per stage, config, provenance. The
    inputs of a disabled section are absent; `template` is an input only so that editing it reruns
    the report (dds.reporting.html renders it); `benchmarks`: stage (rule) -> its jobs' benchmark files."""
    df = read_table(summary)
    enabled = {key: config[key]["enabled"] for key in SECTIONS}
    certified_tables = contents.read_certified(certified, config) if enabled["certify"] else None
    blur_tables = contents.read_blur(blur, config) if enabled["blur"] else None
    tables = {
        key: read_table(path) if enabled[key] else None
        for key, path in [
            ("iterations", iterations_table),
            ("adaptive", adaptive_table),
            ("transfer", transfer_table),
            ("attention", attention_table),
            ("purification", purification_table),
        ]
    }
    parts = []  # the further sections in page order (the paper's marked to come before the accuracy tables)
    compared = None
    if reference is not None:
        compared = contents.compare_with_paper(df, reference, config)
        published = config["report"]["reference"]
        link = os.path.relpath(reference, Path(html).parent)
        parts.append(paper.comparison_section(compared, published["source"], published["n"], link))
    if any(spec["kind"] == "calibrated" for spec in config["denoisers"].values()):
        parts.append(contents.calibration_part(df, certified_tables or {}, config))
    if enabled["certify"]:
        parts.append(contents.certified_part(certified_tables, certified_png, config))
    if enabled["blur"]:
        parts.append(sections.blur_section(blur_tables, config["blur"]))
    if enabled["iterations"]:
        parts.append(contents.iterations_part(tables["iterations"], iterations_png, config))
    if enabled["adaptive"]:
        parts.append(contents.adaptive_part(tables["adaptive"], adaptive_png, config))
    if enabled["transfer"]:
        parts.append(contents.transfer_part(tables["transfer"], transfer_png))
    if enabled["attention"]:
        parts.append(contents.attention_part(tables["attention"], attention_png, config))
    if enabled["purification"]:
        parts.append(contents.purification_part(tables["purification"], purification_png))
    found = findings.headline(df, config, certified_tables, tables["adaptive"], blur_tables)
    # the figure of every defence against epsilon leads when there is one; else the classifiers'
    lead = contents.defences_figure(defences_png) if enabled["blur"] else contents.comparison_figure(comparison)
    # the tables of the other stages that run in `inference.precision` (the gradient stages' are fp32)
    inference_tables = [*certified, *blur, *([transfer_table] if transfer_table is not None else [])]
    page = report_html.render_report(
        df,
        contents.accuracy_figures(df, accuracy, examples, config, comparison if enabled["blur"] else None),
        stage_resources(benchmarks),
        config,
        report_html.provenance("."),
        title=f"dds report: {config['dataset']['name']}",
        models=contents.models(classifier_metrics, denoiser_metrics),
        sections=parts,
        precisions={str(path): precision_of([path]) for path in inference_tables},
        summary={
            "table": findings.headline_table(found),
            "sentences": sentences(found, df, config, tables, compared),
            "figure": lead,
        },
    )
    report_html.write_report(page, html)

"""The HTML report."""

import logging

from dds.io import read_table
from dds.precision import precision_of
from dds.reporting import contents
from dds.reporting import html as report_html
from dds.reporting.tables import stage_resources

log = logging.getLogger(__name__)


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
    reference=None,
    **benchmarks,
) -> None:
    """The HTML report: tables, figures, time and peak memory per stage, config, provenance. The
    inputs of a disabled section are absent; `template` is an input only so that editing it reruns
    the report (dds.reporting.html renders it); `benchmarks`: stage (rule) -> its jobs' benchmark files."""
    df = read_table(summary)
    parts = []  # (section, its figures), in the report's order
    if reference is not None:
        parts.append(contents.reference_part(df, reference, config))
    if any(spec["kind"] == "calibrated" for spec in config["denoisers"].values()):
        parts.append(contents.calibration_part(df, certified, config))
    if config["certify"]["enabled"]:
        parts.append(contents.certified_part(certified, certified_png, config))
    if config["blur"]["enabled"]:
        parts.append(contents.blur_part(blur, defences_png, config))
    if config["iterations"]["enabled"]:
        parts.append(contents.iterations_part(iterations_table, iterations_png, config))
    if config["adaptive"]["enabled"]:
        parts.append(contents.adaptive_part(adaptive_table, adaptive_png, config))
    if config["transfer"]["enabled"]:
        parts.append(contents.transfer_part(transfer_table, transfer_png))
    if config["attention"]["enabled"]:
        parts.append(contents.attention_part(attention_table, attention_png, config))
    figures = contents.accuracy_figures(df, comparison, accuracy, examples, config)
    # the tables of the other stages that run in `inference.precision` (the gradient stages' are fp32)
    inference_tables = [*certified, *blur, *([transfer_table] if transfer_table is not None else [])]
    page = report_html.render_report(
        df,
        figures + [f for _, part_figures in parts for f in part_figures],
        stage_resources(benchmarks),
        config,
        report_html.provenance("."),
        title=f"dds report: {config['dataset']['name']}",
        models=contents.models(classifier_metrics, denoiser_metrics),
        sections=[s for s, _ in parts],
        precisions={str(path): precision_of([path]) for path in inference_tables},
    )
    report_html.write_report(page, html)

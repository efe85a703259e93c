"""The HTML report."""

import logging

from dds import layout
from dds.io import (
    read_json,
    read_table,
)
from dds.reporting import html as report
from dds.reporting import paper, tables

log = logging.getLogger(__name__)


def html_report(config: dict, summary_path, benchmarks: dict, out_path, repo_dir=".") -> None:
    """The HTML report: tables, figures, time and peak memory per stage, config, provenance."""
    dataset = config["dataset"]["name"]
    df = read_table(summary_path)
    figure_list = [("Classifiers compared", layout.fill(layout.COMPARISON_PNG, dataset=dataset),
                    "Denoised accuracy against epsilon, one panel per sigma, one line per classifier.")]
    for k in df[["classifier", "attack", "denoiser"]].drop_duplicates().itertuples(index=False):
        png = layout.fill(layout.ACCURACY_PNG, dataset=dataset, classifier=k.classifier, attack=k.attack,
                          denoiser=k.denoiser)
        figure_list.append((f"{k.classifier}: {k.attack}, denoiser {k.denoiser}", png,
                            "Accuracy against epsilon: one line per sigma after denoising; dashed: no defence."))
    figure_list.append(("Examples", layout.fill(layout.EXAMPLES_FIGURE, dataset=dataset),
                        "Clean images, attacked at the largest epsilon, and denoised at each sigma."))
    models = [{"name": name, "kind": "classifier", "metrics": read_json(layout.fill(layout.CLASSIFIER_METRICS,
                                                                                      dataset=dataset, classifier=name))}
              for name in config["classifiers"]]
    models += [{"name": name, "kind": "denoiser", "metrics": read_json(layout.fill(layout.DENOISER_METRICS,
                                                                                    dataset=dataset, denoiser=name))}
               for name in config["denoisers"]]
    sections = []
    published = config["report"].get("reference")
    if published is not None:
        compared = paper.compare(df, paper.read_reference(published["table"]), dataset, published["classifiers"],
                                 published["attack"], published["denoiser"], published["n"])
        sections.append(paper.comparison_section(compared, published["source"], published["n"]))
    if config["certify"]["enabled"]:
        sections.append(sections.certified_section(config))
        figure_list += [(f"Certified accuracy: {c}, denoiser {d}",
                         layout.fill(layout.CERTIFIED_PNG, dataset=dataset, classifier=c, denoiser=d),
                         "Certified accuracy against L2 radius, one curve per sigma; dashed: multi-scale.")
                        for c in config["classifiers"] for d in config["denoisers"]]
    if config["blur"]["enabled"]:
        sections.append(sections.blur_section(config))
        figure_list.append(("Defences compared", layout.fill(layout.DEFENCES_PNG, dataset=dataset),
                            "Accuracy against epsilon with no defence, diffusion denoising and blur majority."))
    strength = [("iterations", sections.iterations_section, layout.ITERATIONS_PNG, "Accuracy against PGD iterations"),
                ("adaptive", sections.adaptive_section, layout.ADAPTIVE_PNG, "Adaptive attack against unaware PGD"),
                ("transfer", sections.transfer_section, layout.TRANSFER_PNG, "Transfer between classifiers")]
    for key, build, png, title in strength:
        if config[key]["enabled"]:
            sections.append(build(config))
            figure_list.append((title, layout.fill(png, dataset=dataset), sections[-1]["caption"]))
    if config["attention"]["enabled"]:
        sections.append(sections.attention_section(config))
        figure_list += [(f"Attention: {c}", layout.fill(layout.ATTENTION_PNG, dataset=dataset, classifier=c,
                                                        attack=config["attention"]["attack"], denoiser=d),
                         "Grad-CAM of the true class on the same images clean, attacked at each epsilon and denoised "
                         "at each sigma (from the largest epsilon).")
                        for c in config["classifiers"] for d in config["denoisers"]]
    html = report.render_report(df, figure_list, tables.stage_resources(benchmarks), config,
                                report.provenance(repo_dir), title=f"dds report: {dataset}", models=models,
                                sections=sections)
    report.write_report(html, out_path)


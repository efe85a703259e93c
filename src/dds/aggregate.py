"""The stages after classification: accuracy tables, figures, examples and the report.
Kept apart from `stages` so that the torch jobs do not import the plotting stack."""

import pandas as pd

from . import figures, layout, report, tables
from .io import read_images, read_json, read_table, write_table, write_text


def accuracy_table(dataset: str, classifier: str, attack_name: str, denoiser: str, epsilons, sigmas, shards,
                   table_path, tex_path, png_path, svg_path) -> None:
    """The Safeguarding Attention paper's table for one (classifier, attack, denoiser), with its figure."""
    def shards_of(pattern, **values):
        return [layout.fill(pattern, dataset=dataset, classifier=classifier, attack=attack_name, shard=s, **values)
                for s in shards]

    epsilons, sigmas = [float(e) for e in epsilons], [float(s) for s in sigmas]
    df = tables.accuracy_table(
        classifier, attack_name, denoiser,
        undefended={e: shards_of(layout.PREDICTIONS_UNDEFENDED, epsilon=e) for e in epsilons},
        denoised={(s, e): shards_of(layout.PREDICTIONS_DENOISED, epsilon=e, sigma=s, denoiser=denoiser)
                  for s in sigmas for e in epsilons},
        adversarial={e: shards_of(layout.ADVERSARIAL, epsilon=e) for e in epsilons},
    )
    write_table(df, table_path)
    caption = f"{classifier} on {dataset}: accuracy under {attack_name}, undefended and denoised by {denoiser}"
    write_text(tables.latex_table(df, caption, f"tab:{dataset}-{classifier}-{attack_name}-{denoiser}"), tex_path)
    figures.accuracy_figure(df, png_path, svg_path)


def summary(table_paths, summary_path, png_path, svg_path) -> None:
    """All accuracy tables in one, and the figure comparing the classifiers."""
    df = pd.concat([read_table(p) for p in table_paths], ignore_index=True)
    write_table(df, summary_path)
    figures.comparison_figure(df, png_path, svg_path)


def examples(count: int, epsilon: float, sigmas, clean_path, adversarial_path, denoised_paths, png_path) -> None:
    """A few images clean, attacked at the largest epsilon, and denoised at each sigma."""
    rows = [("clean", read_images(clean_path).images[:count]),
            (f"PGD eps={epsilon:g}", read_images(adversarial_path).images[:count])]
    rows += [(f"denoised sigma={float(s):g}", read_images(p).images[:count]) for s, p in zip(sigmas, denoised_paths)]
    figures.examples_figure(rows, png_path)




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
    html = report.render_report(df, figure_list, tables.stage_resources(benchmarks), config,
                                report.provenance(repo_dir), title=f"dds report: {dataset}", models=models)
    report.write_report(html, out_path)

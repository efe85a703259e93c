"""The accuracy tables, their summary and the examples figure."""

import logging

from dds import layout
from dds.io import (
    read_images,
    read_tables,
    write_table,
    write_text,
)
from dds.reporting import figures, tables

log = logging.getLogger(__name__)


def accuracy_table(dataset: str, classifier: str, attack_name: str, denoiser: str, epsilons, sigmas, shards,
                   table_path, tex_path, png_path, svg_path) -> None:
    """The Safeguarding Attention paper's table for one (classifier, attack, denoiser), with its figure."""
    def shards_of(pattern, **values):
        return layout.shard_paths(pattern, shards, dataset=dataset, classifier=classifier, attack=attack_name, **values)

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
    df = read_tables(table_paths)
    write_table(df, summary_path)
    figures.comparison_figure(df, png_path, svg_path)


def examples(count: int, epsilon: float, sigmas, clean_path, adversarial_path, denoised_paths, png_path) -> None:
    """A few images clean, attacked at the largest epsilon, and denoised at each sigma."""
    rows = [("clean", read_images(clean_path).images[:count]),
            (f"PGD eps={epsilon:g}", read_images(adversarial_path).images[:count])]
    rows += [(f"denoised sigma={float(s):g}", read_images(p).images[:count]) for s, p in zip(sigmas, denoised_paths)]
    figures.examples_figure(rows, png_path)


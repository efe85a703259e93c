"""The accuracy tables, their summary and the examples figure."""

import logging

from dds import layout
from dds.io import read_images, read_tables, write_table, write_text
from dds.reporting import figures, latex, tables

log = logging.getLogger(__name__)


def accuracy_table(
    *,
    adversarial,
    undefended,
    denoised,
    table,
    tex,
    png,
    svg,
    dataset: str,
    classifier: str,
    attack: str,
    denoiser: str,
) -> None:
    """The Safeguarding Attention paper's table for one (classifier, attack, denoiser), with its figure:
    `adversarial` and `undefended` shards at each epsilon, `denoised` prediction shards at each (sigma, epsilon)."""
    df = tables.accuracy_table(
        classifier,
        attack,
        denoiser,
        undefended=layout.group(undefended, layout.PREDICTIONS_UNDEFENDED, "epsilon"),
        denoised=layout.group(denoised, layout.PREDICTIONS_DENOISED, "sigma", "epsilon"),
        adversarial=layout.group(adversarial, layout.ADVERSARIAL, "epsilon"),
    )
    write_table(df, table)
    caption = f"{classifier} on {dataset}: accuracy under {attack}, undefended and denoised by {denoiser}"
    write_text(latex.accuracy_latex(df, caption, f"tab:{dataset}-{classifier}-{attack}-{denoiser}"), tex)
    figures.accuracy_figure(df, png, svg)


def accuracy_summary(*, accuracy_tables, summary, png, svg) -> None:
    """All accuracy tables in one, and the figure comparing the classifiers."""
    df = read_tables(accuracy_tables)
    write_table(df, summary)
    figures.comparison_figure(df, png, svg)


def examples_figure(*, clean, adversarial, denoised, figure, n_images: int) -> None:
    """A few images clean, attacked (at the largest epsilon), and denoised at each sigma."""
    epsilon = layout.parse(layout.ADVERSARIAL, adversarial)["epsilon"]
    rows = [
        ("clean", read_images(clean).images[:n_images]),
        (f"PGD eps={epsilon:g}", read_images(adversarial).images[:n_images]),
    ]
    rows += [
        (f"denoised sigma={layout.parse(layout.DENOISED, path)['sigma']:g}", read_images(path).images[:n_images])
        for path in denoised
    ]
    figures.examples_figure(rows, figure)

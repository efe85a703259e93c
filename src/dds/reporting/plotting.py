"""What every figure shares: a figure of its own, atomic PNG/SVG writing, images as arrays,
the epsilon axis, and the panels of accuracy per defence."""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dds.io import atomic_path
from dds.reporting.tables import NO_DEFENCE, defence_order

# twice the browser's 96 CSS pixels per inch: sharp on a high-DPI screen (the report shows figures at that size)
DPI = 192
STYLE = "whitegrid"


def new_figure(figsize) -> Figure:
    """A figure on an Agg canvas of its own: no pyplot, no display, no global figure list."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path_png, path_svg=None) -> None:
    """Write the figure atomically (the temporary name has no suffix, so name the format)."""
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    if path_svg is not None:
        with atomic_path(path_svg) as tmp:
            fig.savefig(tmp, format="svg", bbox_inches="tight")


def as_image(x, where: str) -> np.ndarray:
    """A [C,H,W] tensor in [0,1] -> an array imshow draws: [H,W] for one channel, [H,W,3] for
    three. `where` names the image in errors."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"{where} has an image of shape {tuple(x.shape)}, expected [1 or 3, H, W]")
    array = x.detach().cpu().float().numpy()
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{where} has values outside [0, 1]")
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def epsilon_axis(ax, epsilons) -> None:
    """Ticks at the swept epsilons; symlog when they span decades (e.g. 0.005 ... 0.5)."""
    eps = np.unique(np.asarray(epsilons, dtype=float))
    positive = eps[eps > 0]
    if len(positive) > 1 and positive.max() / positive.min() > 20:
        ax.set_xscale("symlog", linthresh=positive.min())
        ax.autoscale(axis="x")  # limits set while linear would leave a wide empty band
    ax.set_xticks(eps)
    ax.set_xticklabels([f"{e:g}" for e in eps], rotation=45 if len(eps) > 6 else 0)
    ax.minorticks_off()
    ax.set_xlabel("PGD epsilon (L-inf)")


def classifier_sigma_panels(table: pd.DataFrame, classifiers: list, ylabel: str, width: float = 3.6):
    """One panel per (classifier: row, sigma: column) of `table`, titled, the accuracy axis shared
    from 0 to 1 and labelled `ylabel`: the figure, its axes and (row, panel, that panel's rows)."""
    sigmas = sorted(table["sigma"].unique())
    fig = new_figure((width * len(sigmas), 3.2 * len(classifiers)))
    axes = fig.subplots(len(classifiers), len(sigmas), squeeze=False, sharey=True)
    panels = []
    for r, name in enumerate(classifiers):
        axes[r][0].set_ylabel(ylabel)
        for c, sigma in enumerate(sigmas):
            axes[r][c].set_title(f"{name}, sigma={sigma:g}")
            axes[r][c].set_ylim(0, 1.02)
            panels.append((r, axes[r][c], table[(table["classifier"] == name) & (table["sigma"] == sigma)]))
    return fig, axes, panels


def defence_panels(table: pd.DataFrame, x: str, palette_name: str, none_color=None):
    """One panel per classifier, accuracy against `x`, one line per defence ("none" first and
    dashed): the figure and its panels with their classifier's rows, to finish and save."""
    sns.set_theme(style=STYLE)
    classifiers = sorted(table["classifier"].unique())
    defences = defence_order(table["defence"].unique())
    fig = new_figure((4.2 * len(classifiers), 3.8))
    axes = fig.subplots(1, len(classifiers), squeeze=False, sharey=True)[0]
    palette = dict(zip(defences, sns.color_palette(palette_name, n_colors=len(defences))))
    if none_color is not None and NO_DEFENCE in palette:
        palette[NO_DEFENCE] = none_color
    panels = []
    for ax, name in zip(axes, classifiers):
        rows = table[table["classifier"] == name]
        for defence in defences:
            line = rows[rows["defence"] == defence].groupby(x)["accuracy"].mean()
            ax.plot(
                line.index,
                line.to_numpy(),
                marker="o",
                label=defence,
                color=palette[defence],
                linestyle="--" if defence == NO_DEFENCE else "-",
            )
        ax.set_ylim(0, 1.02)
        panels.append((ax, name, rows))
    axes[0].set_ylabel("accuracy")
    return fig, panels


def show_image(ax, x, where: str) -> None:
    """Draw one image tensor [C,H,W] in [0,1] on `ax`, grey for one channel, without ticks or frame.
    Nearest-neighbour: small (32x32) images stay sharp instead of smeared."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.imshow(as_image(x, where), cmap="gray", vmin=0, vmax=1, interpolation="nearest")

"""Figures of attack strength and of where classifiers look: the adaptive attack beside the
unaware one, the transfer matrices, and attention maps over their images."""

import pandas as pd
import seaborn as sns

from dds.evaluation.adaptive import FIXED_NOISE
from dds.io import require_columns
from dds.reporting.plotting import STYLE, classifier_sigma_panels, epsilon_axis, new_figure, save_figure, show_image
from dds.reporting.tables import defence_order


def adaptive_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Denoised accuracy, the mean over the k evaluation draws with its spread over them as
    error bars, against epsilon, one panel per (classifier, sigma), one line per attack:
    unaware PGD dashed, the fixed-noise diagnostic dotted, the adaptive attacks solid."""
    require_columns(
        table, ["classifier", "sigma", "epsilon", "attack", "acc_draws", "acc_draws_std"], "adaptive_figure"
    )
    sns.set_theme(style=STYLE)
    classifiers = sorted(table["classifier"].unique())
    kinds = [k for k in table["attack"].unique() if k != "clean"]
    styles = {"unaware": "--", FIXED_NOISE: ":"}
    fig, axes, panels = classifier_sigma_panels(table, classifiers, "denoised accuracy (mean over draws)")
    palette = dict(zip(kinds, sns.color_palette("tab10", n_colors=len(kinds))))
    for r, ax, rows in panels:
        clean = rows[rows["attack"] == "clean"][["acc_draws", "acc_draws_std"]].mean()
        for kind in kinds:
            line = rows[rows["attack"] == kind].groupby("epsilon")[["acc_draws", "acc_draws_std"]].mean()
            ax.errorbar(
                [0.0, *line.index],
                [clean["acc_draws"], *line["acc_draws"]],
                yerr=[clean["acc_draws_std"], *line["acc_draws_std"]],
                marker="o",
                capsize=2,
                label=kind,
                color=palette[kind],
                linestyle=styles.get(kind, "-"),
            )
        epsilon_axis(ax, [0.0, *rows["epsilon"]])
        if r < len(classifiers) - 1:
            ax.set_xlabel("")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")  # beside: lines cross
    fig.subplots_adjust(hspace=0.35)
    save_figure(fig, path_png, path_svg)


def transfer_figure(matrices: dict, path_png, path_svg) -> None:
    """Heat maps of transfer accuracy (rows: source classifier, columns: target), one per
    (defence, epsilon). `matrices`: (defence, epsilon) -> DataFrame from transfer_matrix."""
    sns.set_theme(style="white")
    defences = defence_order({d for d, _ in matrices})
    epsilons = sorted({e for _, e in matrices})
    fig = new_figure((3.2 * len(epsilons), 2.9 * len(defences)))
    axes = fig.subplots(len(defences), len(epsilons), squeeze=False)
    for r, defence in enumerate(defences):
        for c, eps in enumerate(epsilons):
            ax = axes[r][c]
            sns.heatmap(
                matrices[(defence, eps)],
                ax=ax,
                vmin=0,
                vmax=1,
                annot=True,
                fmt=".2f",
                cbar=False,
                cmap="viridis",
                square=True,
                xticklabels=r == len(defences) - 1,
                yticklabels=c == 0,
            )
            ax.set_title(f"{defence}, eps={eps:g}", fontsize="small")
            ax.set_xlabel("target" if r == len(defences) - 1 else "")
            ax.set_ylabel("source" if c == 0 else "")
    fig.subplots_adjust(hspace=0.3, wspace=0.1)
    save_figure(fig, path_png, path_svg)


def attention_figure(columns: list, path_png, path_svg=None, alpha: float = 0.5) -> None:
    """A grid of heatmaps over their images: one row per image, one column per
    (label, images [k, C, H, W] in [0, 1], maps [k, H, W] in [0, 1]), e.g. clean, PGD at
    several epsilons, denoised at several sigmas."""
    if not columns:
        raise ValueError("attention_figure: no columns given")
    count = len(columns[0][1])
    for label, images, maps in columns:
        if len(images) != count or maps.shape != (count, *images.shape[-2:]):
            raise ValueError(
                f"attention_figure: column {label!r} has images {tuple(images.shape)} and maps "
                f"{tuple(maps.shape)}; every column needs {count} images and one [H, W] map each"
            )
    fig = new_figure((1.4 * len(columns), 1.4 * count + 0.3))
    axes = fig.subplots(count, len(columns), squeeze=False)
    for col, (label, images, maps) in enumerate(columns):
        axes[0, col].set_title(label, fontsize="small")
        for row in range(count):
            ax = axes[row, col]
            show_image(ax, images[row], f"attention_figure: column {label!r}")
            ax.imshow(
                maps[row].detach().cpu().numpy(), cmap="jet", vmin=0, vmax=1, alpha=alpha, interpolation="bilinear"
            )
    fig.tight_layout()
    save_figure(fig, path_png, path_svg)


def attention_grid_figure(clean, sets: list, gradcam: list, count: int, path_png) -> None:
    """The attention_figure of the first `count` images: Grad-CAM (`gradcam`: the maps of
    `clean` then of each of `sets`) clean, attacked at each epsilon, and denoised (from the
    largest epsilon) at each sigma; `sets`: (condition, epsilon, sigma, ImageSet), condition
    "adversarial" or "denoised"."""
    largest = max(eps for condition, eps, _, _ in sets if condition == "adversarial")
    columns = [("clean", clean.images[:count], gradcam[0][:count])]
    columns += [
        (
            f"PGD eps={eps:g}" if condition == "adversarial" else f"eps={eps:g}, sigma={sigma:g}",
            images.images[:count],
            maps[:count],
        )
        for (condition, eps, sigma, images), maps in zip(sets, gradcam[1:])
        if condition == "adversarial" or eps == largest
    ]
    attention_figure(columns, path_png)

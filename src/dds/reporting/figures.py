"""Figures of the accuracy, certified, defence and iteration tables and of example images,
written as PNG (and SVG)."""

import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from dds.io import require_columns
from dds.reporting.plotting import STYLE, defence_panels, epsilon_axis, new_figure, save_figure, show_image
from dds.reporting.tables import MODEL_COLUMNS
from dds.smoothing.certified import MULTISCALE

_PLOT_COLUMNS = [*MODEL_COLUMNS, "sigma", "epsilon", "clean_acc", "pgd_acc", "denoised_acc"]


def _undefended(df: pd.DataFrame) -> pd.DataFrame:
    """The PGD accuracy per epsilon: identical in every sigma's rows, so keep one."""
    return df.drop_duplicates("epsilon").sort_values("epsilon")


def accuracy_figure(df: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy against epsilon for one (classifier, attack, denoiser): a line per sigma
    (denoised accuracy), the undefended PGD accuracy dashed, the clean accuracy dotted."""
    require_columns(df, _PLOT_COLUMNS, "accuracy_figure")
    if df.empty:
        raise ValueError("accuracy_figure: empty table")
    groups = df.drop_duplicates(MODEL_COLUMNS)
    if len(groups) != 1:
        raise ValueError(
            f"accuracy_figure: one (classifier, attack, denoiser) per figure, got {len(groups)}; use comparison_figure"
        )
    classifier, attack, denoiser = groups.iloc[0][MODEL_COLUMNS]
    data = df.sort_values(["sigma", "epsilon"]).assign(curve=lambda d: [f"denoised, σ={s:g}" for s in d["sigma"]])
    with sns.axes_style(STYLE):
        fig = new_figure((6.4, 4.2))
        ax = fig.subplots()
        palette = sns.color_palette("viridis", data["curve"].nunique())
        sns.lineplot(
            data=data, x="epsilon", y="denoised_acc", hue="curve", palette=palette, marker="o", errorbar=None, ax=ax
        )
        pgd = _undefended(data)
        ax.plot(pgd["epsilon"], pgd["pgd_acc"], "--", color="crimson", marker="s", label="no defence")
        ax.axhline(data["clean_acc"].iloc[0], color="grey", linestyle=":", label="clean")
        epsilon_axis(ax, data["epsilon"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{classifier}: {attack}, denoiser {denoiser}")
        ax.legend(loc="best", fontsize="small")
        save_figure(fig, path_png, path_svg)


def _model_labels(df: pd.DataFrame) -> pd.Series:
    """Name a curve by its classifier, adding attack/denoiser only when those vary."""
    varying = [c for c in ("attack", "denoiser") if df[c].nunique() > 1]
    return df[["classifier", *varying]].astype(str).agg(" / ".join, axis=1)


def comparison_figure(df_all: pd.DataFrame, path_png, path_svg) -> None:
    """One panel per sigma: denoised accuracy (solid) and undefended accuracy (dashed)
    against epsilon, one colour per classifier."""
    require_columns(df_all, _PLOT_COLUMNS, "comparison_figure")
    if df_all.empty:
        raise ValueError("comparison_figure: empty table")
    data = df_all.assign(model=_model_labels(df_all)).sort_values(["model", "sigma", "epsilon"])
    models = list(dict.fromkeys(data["model"]))
    sigmas = sorted(data["sigma"].unique())
    palette = dict(zip(models, sns.color_palette("colorblind", len(models))))
    ncols = min(len(sigmas), 4)
    nrows = -(-len(sigmas) // ncols)
    with sns.axes_style(STYLE):
        fig = new_figure((3.6 * ncols, 3.2 * nrows + 0.6))
        axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
        for ax, sigma in zip(axes.flat, sigmas):
            panel = data[data["sigma"] == sigma]
            sns.lineplot(
                data=panel,
                x="epsilon",
                y="denoised_acc",
                hue="model",
                palette=palette,
                marker="o",
                errorbar=None,
                legend=False,
                ax=ax,
            )
            for model, rows in panel.groupby("model", sort=False):
                pgd = _undefended(rows)
                ax.plot(pgd["epsilon"], pgd["pgd_acc"], "--", color=palette[model], alpha=0.8)
            epsilon_axis(ax, data["epsilon"])
            ax.set_ylim(0, 1)
            ax.set_ylabel("accuracy")
            ax.set_title(f"σ = {sigma:g}")
        for ax in axes.flat[len(sigmas) :]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=palette[m], marker="o", label=m) for m in models]
        handles += [
            Line2D([], [], color="black", label="denoised"),
            Line2D([], [], color="black", linestyle="--", label="no defence"),
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 4),
            bbox_to_anchor=(0.5, 1.0),
            frameon=False,
            fontsize="small",
        )
        fig.tight_layout()
        save_figure(fig, path_png, path_svg)


def examples_figure(rows: list, path_png) -> None:
    """A grid of example images, one row per (title, images[k,C,H,W] in [0,1])."""
    if not rows:
        raise ValueError("examples_figure: no rows given")
    for title, images in rows:
        if images.ndim != 4 or len(images) == 0:
            shape = tuple(images.shape)
            raise ValueError(f"examples_figure: row {title!r} must be a non-empty [k,C,H,W] tensor, got shape {shape}")
    ncols = max(len(images) for _, images in rows)
    fig = new_figure((1.3 * ncols + 1.4, 1.3 * len(rows)))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for (title, images), axes_row in zip(rows, axes):
        for k, ax in enumerate(axes_row):
            if k < len(images):
                show_image(ax, images[k], f"examples_figure: row {title!r}")
            else:
                ax.set_axis_off()
        axes_row[0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize="small")
    fig.tight_layout()
    save_figure(fig, path_png)


def certified_figure(curves: dict, title: str, path_png, path_svg) -> None:
    """Certified accuracy against L2 radius: one step curve per method (a sigma, or the
    multi-scale cascade). `curves`: label -> (radius grid, certified accuracy)."""
    sns.set_theme(style=STYLE)
    fig = new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    palette = sns.color_palette("viridis", n_colors=max(1, len(curves)))
    for (label, (grid, acc)), colour in zip(curves.items(), palette):
        ax.step(
            grid,
            acc,
            where="post",
            label=label,
            color="black" if label == MULTISCALE else colour,
            linestyle="--" if label == MULTISCALE else "-",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    save_figure(fig, path_png, path_svg)


def defences_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy against epsilon, one panel per classifier, one line per defence (the blur
    majority's accuracy is among the images it does not reject)."""
    require_columns(table, ["classifier", "epsilon", "defence", "accuracy"], "defences_figure")
    fig, panels = defence_panels(table, "epsilon", "tab10")
    for ax, name, rows in panels:
        epsilon_axis(ax, rows["epsilon"])
        ax.set_title(name)
    panels[-1][0].legend(loc="lower left", fontsize="small")
    save_figure(fig, path_png, path_svg)


def iterations_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy against PGD iterations (log scale), one panel per classifier, one line per
    defence (none dashed, each sigma of the denoiser solid), as in Xie et al.'s Figure 6."""
    require_columns(table, ["classifier", "steps", "defence", "accuracy", "epsilon"], "iterations_figure")
    fig, panels = defence_panels(table, "steps", "viridis", none_color="black")
    for ax, name, rows in panels:
        steps = sorted(rows["steps"].unique())
        ax.set_xscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("PGD iterations")
        ax.set_title(f"{name}, epsilon={rows['epsilon'].iloc[0]:g}")
    panels[-1][0].legend(loc="best", fontsize="small")
    save_figure(fig, path_png, path_svg)

"""Figures of the accuracy tables and of example images, written as PNG (and SVG)."""

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dds.io import atomic_path
from dds.reporting.tables import MODEL_COLUMNS, require_columns

DPI = 120
_PLOT_COLUMNS = [*MODEL_COLUMNS, "sigma", "epsilon", "clean_acc", "pgd_acc", "denoised_acc"]
_STYLE = "whitegrid"


def _figure(figsize) -> Figure:
    """A figure on an Agg canvas of its own: no pyplot, no display, no global figure list."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path_png, path_svg=None) -> None:
    """Write the figure atomically (the temporary name has no suffix, so name the format)."""
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    if path_svg is not None:
        with atomic_path(path_svg) as tmp:
            fig.savefig(tmp, format="svg", bbox_inches="tight")


def _epsilon_axis(ax, epsilons) -> None:
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
    with sns.axes_style(_STYLE):
        fig = _figure((6.4, 4.2))
        ax = fig.subplots()
        palette = sns.color_palette("viridis", data["curve"].nunique())
        sns.lineplot(data=data, x="epsilon", y="denoised_acc", hue="curve", palette=palette,
                     marker="o", errorbar=None, ax=ax)
        pgd = _undefended(data)
        ax.plot(pgd["epsilon"], pgd["pgd_acc"], "--", color="crimson", marker="s", label="no defence")
        ax.axhline(data["clean_acc"].iloc[0], color="grey", linestyle=":", label="clean")
        _epsilon_axis(ax, data["epsilon"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{classifier}: {attack}, denoiser {denoiser}")
        ax.legend(loc="best", fontsize="small")
        _save(fig, path_png, path_svg)


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
    with sns.axes_style(_STYLE):
        fig = _figure((3.6 * ncols, 3.2 * nrows + 0.6))
        axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
        for ax, sigma in zip(axes.flat, sigmas):
            panel = data[data["sigma"] == sigma]
            sns.lineplot(data=panel, x="epsilon", y="denoised_acc", hue="model", palette=palette,
                         marker="o", errorbar=None, legend=False, ax=ax)
            for model, rows in panel.groupby("model", sort=False):
                pgd = _undefended(rows)
                ax.plot(pgd["epsilon"], pgd["pgd_acc"], "--", color=palette[model], alpha=0.8)
            _epsilon_axis(ax, data["epsilon"])
            ax.set_ylim(0, 1)
            ax.set_ylabel("accuracy")
            ax.set_title(f"σ = {sigma:g}")
        for ax in axes.flat[len(sigmas):]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=palette[m], marker="o", label=m) for m in models]
        handles += [Line2D([], [], color="black", label="denoised"),
                    Line2D([], [], color="black", linestyle="--", label="no defence")]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4),
                   bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize="small")
        fig.tight_layout()
        _save(fig, path_png, path_svg)


def _as_image(x: torch.Tensor, title: str) -> np.ndarray:
    """[C,H,W] in [0,1] -> an array imshow draws: [H,W] for one channel, [H,W,3] for three."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        shape = tuple(x.shape)
        raise ValueError(f"examples_figure: row {title!r} has an image of shape {shape}, expected [1 or 3, H, W]")
    array = x.detach().cpu().float().numpy()
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"examples_figure: row {title!r} has values outside [0, 1]")
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def examples_figure(rows: list, path_png) -> None:
    """A grid of example images, one row per (title, images[k,C,H,W] in [0,1])."""
    if not rows:
        raise ValueError("examples_figure: no rows given")
    for title, images in rows:
        if images.ndim != 4 or len(images) == 0:
            shape = tuple(images.shape)
            raise ValueError(f"examples_figure: row {title!r} must be a non-empty [k,C,H,W] tensor, got shape {shape}")
    ncols = max(len(images) for _, images in rows)
    fig = _figure((1.3 * ncols + 1.4, 1.3 * len(rows)))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for (title, images), axes_row in zip(rows, axes):
        for k, ax in enumerate(axes_row):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if k < len(images):
                # nearest: small (32x32) images stay sharp instead of smeared
                ax.imshow(_as_image(images[k], title), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes_row[0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize="small")
    fig.tight_layout()
    _save(fig, path_png)


def certified_figure(curves: dict, title: str, path_png, path_svg) -> None:
    """Certified accuracy against L2 radius: one step curve per method (a sigma, or the
    multi-scale cascade). `curves`: label -> (radius grid, certified accuracy)."""
    sns.set_theme(style=_STYLE)
    fig = _figure((6.0, 4.0))
    ax = fig.add_subplot()
    palette = sns.color_palette("viridis", n_colors=max(1, len(curves)))
    for (label, (grid, acc)), colour in zip(curves.items(), palette):
        ax.step(grid, acc, where="post", label=label, color="black" if label == "multi-scale" else colour,
                linestyle="--" if label == "multi-scale" else "-")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    _save(fig, path_png, path_svg)


def _defence_panels(table: pd.DataFrame, x: str, palette_name: str, none_color=None):
    """One panel per classifier, accuracy against `x`, one line per defence ("none" first and
    dashed): the figure and its panels with their classifier's rows, to finish and save."""
    sns.set_theme(style=_STYLE)
    classifiers = sorted(table["classifier"].unique())
    defences = sorted(table["defence"].unique(), key=lambda d: (d != "none", d))
    fig = _figure((4.2 * len(classifiers), 3.8))
    axes = fig.subplots(1, len(classifiers), squeeze=False, sharey=True)[0]
    palette = dict(zip(defences, sns.color_palette(palette_name, n_colors=len(defences))))
    if none_color is not None and "none" in palette:
        palette["none"] = none_color
    panels = []
    for ax, name in zip(axes, classifiers):
        rows = table[table["classifier"] == name]
        for defence in defences:
            line = rows[rows["defence"] == defence].groupby(x)["accuracy"].mean()
            ax.plot(line.index, line.to_numpy(), marker="o", label=defence, color=palette[defence],
                    linestyle="--" if defence == "none" else "-")
        ax.set_ylim(0, 1.02)
        panels.append((ax, name, rows))
    axes[0].set_ylabel("accuracy")
    return fig, panels


def defences_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy against epsilon, one panel per classifier, one line per defence (the blur
    majority's accuracy is among the images it does not reject)."""
    require_columns(table, ["classifier", "epsilon", "defence", "accuracy"], "defences_figure")
    fig, panels = _defence_panels(table, "epsilon", "tab10")
    for ax, name, rows in panels:
        _epsilon_axis(ax, rows["epsilon"])
        ax.set_title(name)
    panels[-1][0].legend(loc="lower left", fontsize="small")
    _save(fig, path_png, path_svg)


def iterations_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Accuracy against PGD iterations (log scale), one panel per classifier, one line per
    defence (none dashed, each sigma of the denoiser solid), as in Xie et al.'s Figure 6."""
    require_columns(table, ["classifier", "steps", "defence", "accuracy", "epsilon"], "iterations_figure")
    fig, panels = _defence_panels(table, "steps", "viridis", none_color="black")
    for ax, name, rows in panels:
        steps = sorted(rows["steps"].unique())
        ax.set_xscale("log")
        ax.set_xticks(steps)
        ax.set_xticklabels([str(s) for s in steps])
        ax.minorticks_off()
        ax.set_xlabel("PGD iterations")
        ax.set_title(f"{name}, epsilon={rows['epsilon'].iloc[0]:g}")
    panels[-1][0].legend(loc="best", fontsize="small")
    _save(fig, path_png, path_svg)


def adaptive_figure(table: pd.DataFrame, path_png, path_svg) -> None:
    """Single-draw denoised accuracy against epsilon, one panel per (classifier, sigma), one
    line per attack: unaware PGD dashed, adaptive attacks (each target) solid."""
    require_columns(table, ["classifier", "sigma", "epsilon", "attack", "acc_single"], "adaptive_figure")
    sns.set_theme(style=_STYLE)
    classifiers, sigmas = sorted(table["classifier"].unique()), sorted(table["sigma"].unique())
    kinds = [k for k in table["attack"].unique() if k != "clean"]
    fig = _figure((3.6 * len(sigmas), 3.2 * len(classifiers)))
    axes = fig.subplots(len(classifiers), len(sigmas), squeeze=False, sharey=True)
    palette = dict(zip(kinds, sns.color_palette("tab10", n_colors=len(kinds))))
    for r, name in enumerate(classifiers):
        for c, sigma in enumerate(sigmas):
            ax = axes[r][c]
            rows = table[(table["classifier"] == name) & (table["sigma"] == sigma)]
            clean = rows[rows["attack"] == "clean"]["acc_single"].mean()
            for kind in kinds:
                line = rows[rows["attack"] == kind].groupby("epsilon")["acc_single"].mean()
                ax.plot([0.0, *line.index], [clean, *line.to_numpy()], marker="o", label=kind, color=palette[kind],
                        linestyle="--" if kind == "unaware" else "-")
            _epsilon_axis(ax, [0.0, *rows["epsilon"]])
            if r < len(classifiers) - 1:
                ax.set_xlabel("")
            ax.set_title(f"{name}, sigma={sigma:g}")
            ax.set_ylim(0, 1.02)
        axes[r][0].set_ylabel("denoised accuracy (one draw)")
    axes[0][-1].legend(loc="lower left", fontsize="small")
    fig.subplots_adjust(hspace=0.35)
    _save(fig, path_png, path_svg)


def transfer_figure(matrices: dict, path_png, path_svg) -> None:
    """Heat maps of transfer accuracy (rows: source classifier, columns: target), one per
    (defence, epsilon). `matrices`: (defence, epsilon) -> DataFrame from transfer_matrix."""
    sns.set_theme(style="white")
    defences = sorted({d for d, _ in matrices}, key=lambda d: (d != "none", d))
    epsilons = sorted({e for _, e in matrices})
    fig = _figure((3.2 * len(epsilons), 2.9 * len(defences)))
    axes = fig.subplots(len(defences), len(epsilons), squeeze=False)
    for r, defence in enumerate(defences):
        for c, eps in enumerate(epsilons):
            ax = axes[r][c]
            sns.heatmap(matrices[(defence, eps)], ax=ax, vmin=0, vmax=1, annot=True, fmt=".2f", cbar=False,
                        cmap="viridis", square=True, xticklabels=r == len(defences) - 1, yticklabels=c == 0)
            ax.set_title(f"{defence}, eps={eps:g}", fontsize="small")
            ax.set_xlabel("target" if r == len(defences) - 1 else "")
            ax.set_ylabel("source" if c == 0 else "")
    fig.subplots_adjust(hspace=0.3, wspace=0.1)
    _save(fig, path_png, path_svg)

"""The transfer matrix between classifiers and its table."""

import logging

from dds import layout
from dds.io import read_image_shards, read_tables, write_table

log = logging.getLogger(__name__)


def transfer_matrix(
    *,
    adversarial,
    denoised,
    classifiers,
    accuracy,
    source: str,
    attack_name: str,
    denoiser_name: str,
    batch_size: int,
    device: str,
    inference: dict | None,
) -> None:
    """Adversarial examples made on `source`, classified by every one of `classifiers`, undefended
    (`adversarial` shards at each epsilon) and after denoising (`denoised` shards at each
    (sigma, epsilon)): accuracy per (target, epsilon, defence), sets in the order of the inputs."""
    from dds.device import resolve_device
    from dds.evaluation.inference import load_prepared, resolve
    from dds.evaluation.transfer import transfer_accuracy
    from dds.precision import combined, precision_of, with_precision

    dev = resolve_device(device)
    run = resolve(inference, dev)
    models = {
        layout.parse(layout.CLASSIFIER, path)["classifier"]: load_prepared(path, dev, run) for path in classifiers
    }
    sets = [(eps, "none", paths) for eps, paths in layout.group(adversarial, layout.ADVERSARIAL, "epsilon").items()]
    sets += [
        (eps, f"sigma={sigma:g}", paths)
        for (sigma, eps), paths in layout.group(denoised, layout.DENOISED, "sigma", "epsilon").items()
    ]
    names = {"attack": attack_name, "denoiser": denoiser_name, "source": source}
    # one set in memory at a time
    loaded = ((eps, defence, read_image_shards(paths)) for eps, defence, paths in sets)
    table = transfer_accuracy(models, loaded, names, batch_size, dev)
    write_table(with_precision(table, combined([run.precision, precision_of(denoised)])), accuracy)
    log.info("%s examples of %s: %d sets classified by %s", attack_name, source, len(sets), ", ".join(models))


def transfer_table(*, matrices, table, png, svg) -> None:
    """The transfer results of every source classifier: one table, heat maps per defence and
    epsilon (of the first attack, and the denoiser run with the most source classifiers: a
    calibrated one runs with its own classifier only)."""
    from dds.reporting.attack_figures import transfer_figure
    from dds.reporting.attack_tables import transfer_matrix as matrix

    df = read_tables(matrices)
    write_table(df, table)
    widest = df.groupby("denoiser", sort=False)["source"].nunique().idxmax()
    first = df[(df["attack"] == df["attack"].iloc[0]) & (df["denoiser"] == widest)]
    matrices_by_panel = {
        (d, e): matrix(first, e, d)
        for d, e in first[["defence", "epsilon"]].drop_duplicates().itertuples(index=False)
        if e > 0
    }
    transfer_figure(matrices_by_panel, png, svg)

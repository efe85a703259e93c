"""The transfer matrix between classifiers and its table."""

import logging

from dds.device import resolve_device
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    read_tables,
    write_table,
)
from dds.reporting import attack_tables, figures

log = logging.getLogger(__name__)


def transfer(attack_name: str, source: str, denoiser_name: str, epsilons, sigmas, batch_size: int, device: str,
             adversarial_paths: dict, denoised_paths: dict, classifier_paths: dict, out_path,
             inference: dict | None = None) -> None:
    """Adversarial examples made on `source`, classified by every classifier, undefended
    (`adversarial_paths`: epsilon -> shards) and after denoising (`denoised_paths`:
    (sigma, epsilon) -> shards): accuracy per (target, epsilon, defence)."""
    import pandas as pd

    from dds.evaluation import classify
    from dds.evaluation.inference import resolve
    from dds.io import concat_images

    dev = resolve_device(device)
    run = resolve(inference, dev)
    models = {name: load_prepared(path, dev, run) for name, path in classifier_paths.items()}
    sets = [(float(e), "none", adversarial_paths[float(e)]) for e in epsilons]
    sets += [(float(e), f"sigma={float(s):g}", denoised_paths[(float(s), float(e))]) for s in sigmas for e in epsilons]
    rows = []
    for eps, defence, paths in sets:
        images = concat_images([read_images(p) for p in paths])
        for target, model in models.items():
            acc = float(classify.classify_predictions(model, images, batch_size, dev)["correct"].mean())
            rows.append({"attack": attack_name, "denoiser": denoiser_name, "source": source, "target": target,
                         "epsilon": eps, "defence": defence, "accuracy": acc, "n": len(images)})
    log.info("%s examples of %s: %d sets classified by %s", attack_name, source, len(sets), ", ".join(models))
    write_table(pd.DataFrame(rows), out_path)


def transfer_summary(paths, table_path, png_path, svg_path) -> None:
    """The transfer results of every source classifier: one table, heat maps per defence
    and epsilon (of the first attack and denoiser)."""
    table = read_tables(paths)
    write_table(table, table_path)
    first = table[(table["attack"] == table["attack"].iloc[0]) & (table["denoiser"] == table["denoiser"].iloc[0])]
    matrices = {(d, e): attack_tables.transfer_matrix(first, e, d)
                for d, e in first[["defence", "epsilon"]].drop_duplicates().itertuples(index=False) if e > 0}
    figures.transfer_figure(matrices, png_path, svg_path)


"""The blur-majority rules and the defences comparison."""

import logging

import pandas as pd

from dds import layout
from dds.device import resolve_device
from dds.evaluation import blur as blur_defence
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    read_tables,
    write_table,
    write_text,
)
from dds.reporting import figures

log = logging.getLogger(__name__)


def blur(kernel_size: int, blur_sigma: float, noise_level: float, seed: int, batch_size: int, device: str,
         images_path, classifier_path, out_path, inference: dict | None = None) -> None:
    """The blur-majority defence on an image shard with `noise_level` noise added (0 for none):
    predictions as is, blurred once and twice, and their majority, with a noise_level column."""
    from dds.evaluation import blur as blur_defence
    from dds.evaluation.inference import resolve

    dev = resolve_device(device)
    images = blur_defence.add_noise(read_images(images_path), noise_level, seed)
    model = load_prepared(classifier_path, dev, resolve(inference, dev))
    table = blur_defence.blur_predictions(model, images, kernel_size, blur_sigma, batch_size, dev)
    table["noise_level"] = float(noise_level)
    summary = blur_defence.blur_table(table).iloc[0]
    log.info("noise %g: acc NS %.4f SS %.4f DS %.4f majority %.4f, rejected %.4f of %d images", noise_level,
             summary["acc_ns"], summary["acc_ss"], summary["acc_ds"], summary["acc_maj"], summary["reject_rate"],
             summary["n"])
    write_table(table, out_path)


def blur_summary(dataset: str, classifier: str, noise_levels, epsilons: dict, shards, table_path, tex_path) -> None:
    """The blur-majority table of one classifier: per noise level on the clean set (the
    blog's table) and per attack epsilon on the adversarial sets."""
    def merged(pattern, **values):
        return read_tables(layout.shard_paths(pattern, shards, dataset=dataset, classifier=classifier, **values))

    frames = [merged(layout.BLUR_CLEAN, noise=float(level)).assign(source="noise", attack="", epsilon=0.0)
              for level in noise_levels]
    frames += [merged(layout.BLUR_ADVERSARIAL, attack=attack, epsilon=float(eps)).assign(source="attack", attack=attack,
                                                                                        epsilon=float(eps))
               for attack, eps_list in epsilons.items() for eps in eps_list]
    table = blur_defence.blur_table(pd.concat(frames, ignore_index=True).assign(classifier=classifier))
    write_table(table, table_path)
    caption = f"{classifier} on {dataset}: Gaussian-blur majority defence under Gaussian noise"
    write_text(blur_defence.latex_blur_table(table[table["source"] == "noise"], caption, f"tab:{dataset}-{classifier}-blur"),
               tex_path)


DEFENCE_COLUMNS = ["classifier", "attack", "epsilon", "defence", "accuracy", "reject_rate"]


def defences(accuracy_paths, blur_paths, table_path, png_path, svg_path) -> None:
    """One table and figure comparing, per classifier and attack epsilon: no defence,
    diffusion denoising at each sigma, single blur, and the blur majority vote."""
    acc = read_tables(accuracy_paths)
    attacked = read_tables(blur_paths).query("source == 'attack'")
    keys = ["classifier", "attack", "epsilon"]
    several = acc["denoiser"].nunique() > 1
    parts = [acc.drop_duplicates(keys).assign(defence="none", accuracy=acc["pgd_acc"])]
    parts += [rows.assign(defence=f"{d + ' ' if several else ''}diffusion sigma={s:g}", accuracy=rows["denoised_acc"])
              for (d, s), rows in acc.groupby(["denoiser", "sigma"])]
    parts += [attacked.drop(columns="reject_rate").assign(defence="blur single", accuracy=attacked["acc_ss"]),
              attacked.assign(defence="blur majority", accuracy=attacked["acc_maj"])]  # keeps its reject_rate
    table = pd.concat([p.reindex(columns=DEFENCE_COLUMNS) for p in parts], ignore_index=True)
    table = table.sort_values(keys + ["defence"], ignore_index=True)
    write_table(table, table_path)
    figures.defences_figure(table, png_path, svg_path)


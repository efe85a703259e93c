"""The blur-majority rules and the defences comparison."""

import logging

import pandas as pd

from dds import layout
from dds.device import resolve_device
from dds.io import (
    read_images,
    read_tables,
    write_table,
    write_text,
)

log = logging.getLogger(__name__)


def blur_noise(
    *,
    images,
    classifier,
    predictions: list,
    spec: dict,
    noise_levels: list,
    seed: int,
    batch_size: int,
    device: str,
    inference: dict | None = None,
) -> None:
    """The blur-majority defence on an image shard with Gaussian noise of each std in
    `noise_levels` added (0 for none), into the file of `predictions` at the same position:
    predictions as is, blurred once and twice, and their majority, with a noise_level column."""
    layout.expect_files("blur_noise", len(noise_levels), f"{len(noise_levels)} noise levels", predictions=predictions)
    from dds.evaluation.blur import add_noise

    source = read_images(images)
    sets = [(add_noise(source, noise, seed), noise) for noise in noise_levels]
    _blur_sets(sets, classifier, predictions, spec, batch_size, device, inference)


def blur_adversarial(
    *,
    images: list,
    classifier,
    predictions: list,
    spec: dict,
    batch_size: int,
    device: str,
    inference: dict | None = None,
) -> None:
    """The blur-majority defence on each adversarial set of `images` as it is (blur_noise's
    table at noise level 0), into the file of `predictions` at the same position."""
    layout.expect_files("blur_adversarial", len(images), f"{len(images)} image sets", predictions=predictions)
    _blur_sets(
        [(read_images(path), 0.0) for path in images], classifier, predictions, spec, batch_size, device, inference
    )


def _blur_sets(sets, classifier, predictions, spec, batch_size, device, inference) -> None:
    """The blur-majority predictions of each (images, noise level) of `sets` with one classifier,
    loaded once after every set was read."""
    from dds.evaluation import blur
    from dds.evaluation.inference import load_prepared, resolve
    from dds.precision import with_precision

    dev = resolve_device(device)
    run = resolve(inference, dev)
    model = load_prepared(classifier, dev, run)
    for (images, noise), path in zip(sets, predictions, strict=True):
        table = blur.blur_predictions(model, images, spec["kernel_size"], spec["sigma"], batch_size, dev)
        table["noise_level"] = float(noise)
        summary = blur.blur_table(table).iloc[0]
        log.info(
            "noise %g: acc NS %.4f SS %.4f DS %.4f majority %.4f, rejected %.4f of %d images",
            noise,
            *summary[["acc_ns", "acc_ss", "acc_ds", "acc_maj", "reject_rate", "n"]],
        )
        write_table(with_precision(table, run.precision), path)


def blur_table(*, clean, adversarial, table, tex, dataset: str, classifier: str) -> None:
    """The blur-majority table of one classifier: per noise level on the clean set (the
    blog's table) and per attack epsilon on the adversarial sets (each file's noise level,
    attack and epsilon from its path)."""
    from dds.evaluation import blur
    from dds.precision import PRECISION, precision_of, with_precision
    from dds.reporting.latex import blur_latex

    frames = [
        read_tables(paths).assign(source="noise", attack="", epsilon=0.0)
        for paths in layout.group(clean, layout.BLUR_CLEAN, "noise").values()
    ]
    frames += [
        read_tables(paths).assign(source="attack", attack=attack, epsilon=epsilon)
        for (attack, epsilon), paths in layout.group(adversarial, layout.BLUR_ADVERSARIAL, "attack", "epsilon").items()
    ]
    # one precision for the whole table: a per-image key would split a group whose jobs differed
    per_image = pd.concat(frames, ignore_index=True).drop(columns=PRECISION).assign(classifier=classifier)
    result = with_precision(blur.blur_table(per_image), precision_of([*clean, *adversarial]))
    write_table(result, table)
    caption = f"{classifier} on {dataset}: Gaussian-blur majority defence under Gaussian noise"
    write_text(blur_latex(result[result["source"] == "noise"], caption, f"tab:{dataset}-{classifier}-blur"), tex)


def defences_table(*, accuracy, blur, table, png, svg) -> None:
    """One table and figure comparing, per classifier and attack epsilon: no defence,
    diffusion denoising at each sigma, single blur, and the blur majority vote."""
    from dds.evaluation.blur import compare_defences
    from dds.precision import precision_of, with_precision
    from dds.reporting import figures

    result = compare_defences(read_tables(accuracy), read_tables(blur))
    write_table(with_precision(result, precision_of([*accuracy, *blur])), table)
    figures.defences_figure(result, png, svg)

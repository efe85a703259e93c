"""The PGD iteration sweep and its table."""

import logging

from dds.io import read_images, read_tables, write_table

log = logging.getLogger(__name__)


def iterations_sweep(
    *,
    images,
    classifier,
    denoiser,
    accuracy,
    classifier_name: str,
    attack_name: str,
    denoiser_name: str,
    spec: dict,
    sweep: dict,
    sigmas,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Accuracy against PGD iterations (`sweep`: epsilon, steps, num_images) on the first
    evaluation images, undefended and denoised at each sigma."""
    from dds.device import resolve_device
    from dds.diffusion.loading import load_denoiser
    from dds.evaluation.iterations import iterations_sweep as sweep_steps
    from dds.models.classifiers import load_classifier
    from dds.precision import GRADIENT_PRECISION, with_precision

    dev = resolve_device(device)
    clean = read_images(images).subset(0, sweep["num_images"])
    model = load_classifier(classifier, dev)
    denoisers = {float(s): load_denoiser(denoiser, float(s), dev) for s in sigmas}
    names = {"classifier": classifier_name, "attack": attack_name, "denoiser": denoiser_name}
    table = sweep_steps(
        model, denoisers, clean, spec, float(sweep["epsilon"]), sweep["steps"], names, seed, batch_size, dev
    )
    write_table(with_precision(table, GRADIENT_PRECISION), accuracy)


def iterations_table(*, sweeps, table, png, svg) -> None:
    """The PGD iteration sweeps of every classifier in one table and figure."""
    from dds.reporting.figures import iterations_figure

    df = read_tables(sweeps)
    write_table(df, table)
    iterations_figure(df, png, svg)

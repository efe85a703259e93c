"""The adaptive attack through noise, denoiser and classifier, and its table."""

import logging

from dds import layout
from dds.io import first_images, read_images, read_tables, write_table, write_text

log = logging.getLogger(__name__)


def adaptive_attack(
    *,
    images,
    unaware,
    classifier,
    denoiser,
    results,
    classifier_name: str,
    attack_name: str,
    denoiser_name: str,
    sigma: float,
    spec: dict,
    adaptive: dict,
    num_images: int,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """The adaptive (EOT) attack of settings `adaptive` at one sigma, on the first `num_images`
    evaluation images, beside the same images' `unaware` PGD examples (shards at each epsilon):
    one row per (image, epsilon, attack kind), see dds.evaluation.adaptive."""
    from dds.device import resolve_device
    from dds.diffusion.loading import load_denoiser
    from dds.evaluation.adaptive import adaptive_evaluation
    from dds.models.classifiers import load_classifier
    from dds.precision import GRADIENT_PRECISION, with_precision

    dev = resolve_device(device)
    clean = read_images(images).subset(0, num_images)
    attacked = {
        eps: first_images(paths, num_images)
        for eps, paths in layout.group(unaware, layout.ADVERSARIAL, "epsilon").items()
    }
    model = load_classifier(classifier, dev)
    names = {"classifier": classifier_name, "attack": attack_name, "denoiser": denoiser_name}
    table = adaptive_evaluation(
        model, load_denoiser(denoiser, sigma, dev), clean, attacked, spec, adaptive, names, seed, batch_size, dev
    )
    write_table(with_precision(table, GRADIENT_PRECISION), results)


def adaptive_table(*, results, table, tex, png, svg, dataset: str) -> None:
    """The adaptive attack beside the unaware one: table, LaTeX (the settings in its caption) and figure."""
    from dds.precision import precision_of, with_precision
    from dds.reporting.attack_figures import adaptive_figure
    from dds.reporting.attack_tables import adaptive_table as summarise
    from dds.reporting.latex import adaptive_latex

    df = with_precision(summarise(read_tables(results)), precision_of(results))
    write_table(df, table)
    caption = (
        f"{dataset}: denoised accuracy, the defence scored as a random one (one draw, mean and spread over "
        "k draws, majority vote), clean, under the unaware PGD and under the adaptive attack through noise, "
        "denoiser and classifier (EOT)"
    )
    write_text(adaptive_latex(df, caption, f"tab:{dataset}-adaptive"), tex)
    adaptive_figure(df, png, svg)

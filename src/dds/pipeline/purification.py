"""One-shot denoising beside multi-step purification: the job of one (denoiser, sigma) and the table."""

import logging

from dds import layout
from dds.io import first_images, read_images, read_tables, write_table, write_text

log = logging.getLogger(__name__)


def purification(
    *,
    images,
    classifiers,
    unaware,
    denoiser,
    results,
    certificates,
    classifier_names: list,
    denoiser_name: str,
    sigma: float,
    spec: dict,
    attack_spec: dict,
    certify: dict,
    num_images: int,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """The denoiser at `sigma` defending each classifier on the first `num_images` evaluation
    images: clean, the unaware PGD (`unaware`: shards per classifier), the adaptive attack with
    exact gradients and BPDA, and certificates (dds.evaluation.purification)."""
    from dds.device import resolve_device
    from dds.diffusion.loading import load_denoiser
    from dds.evaluation.purification import purification_evaluation
    from dds.models.classifiers import load_classifier
    from dds.precision import GRADIENT_PRECISION, with_precision

    dev = resolve_device(device)
    clean = read_images(images).subset(0, num_images)
    attacked = {
        name: first_images(paths, num_images)
        for name, paths in layout.group(
            unaware, layout.ADVERSARIAL, "classifier", choices={"classifier": classifier_names}
        ).items()
    }
    models = {name: load_classifier(path, dev) for name, path in zip(classifier_names, classifiers, strict=True)}
    rows, certs = purification_evaluation(
        models,
        load_denoiser(denoiser, sigma, dev),
        clean,
        attacked,
        attack_spec,
        spec,
        certify,
        {"attack": spec["attack"], "denoiser": denoiser_name},
        seed,
        batch_size,
        dev,
    )
    write_table(with_precision(rows, GRADIENT_PRECISION), results)
    write_table(with_precision(certs, GRADIENT_PRECISION), certificates)


def purification_table(*, results, certificates, table, tex, png, svg, dataset: str, radii: list) -> None:
    """The comparison table (one row per classifier, denoiser and sigma), its LaTeX and figure."""
    from dds.reporting import purification as report

    df = report.purification_table(read_tables(results), read_tables(certificates), radii)
    write_table(df, table)
    caption = (
        f"{dataset}: one-shot denoising beside multi-step purification on the same images, clean, under the "
        "unaware PGD, the adaptive attack and BPDA, and certified accuracy"
    )
    write_text(report.purification_latex(df, caption, f"tab:{dataset}-purification"), tex)
    report.purification_figure(df, png, svg)

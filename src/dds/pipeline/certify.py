"""The certification rules: CERTIFY per shard and sigma, and the certified tables."""

import logging

from dds import layout
from dds.device import resolve_device
from dds.io import (
    read_images,
    read_tables,
    write_table,
    write_text,
)

log = logging.getLogger(__name__)


def _by_classifier(paths, pattern: str) -> dict:
    """Classifier name -> file, for one file or a list of files of `pattern`."""
    paths = [paths] if isinstance(paths, str) else paths
    return {layout.parse(pattern, path)["classifier"]: path for path in paths}


def certify_clean(
    *,
    images,
    denoiser,
    classifiers,
    certificates,
    spec: dict,
    rows,
    sigma: float,
    seed: int,
    device: str,
    inference: dict | None = None,
    certificates_pattern: str = layout.CERTIFICATES_CLEAN,
) -> None:
    """Certify rows [start, stop) of an image file with every classifier of `classifiers` at once,
    fused through one denoiser at one sigma (one denoising per noise draw serves them all); each
    classifier's per-example results go to the file of `certificates` that names it."""
    from dds.diffusion.loading import load_denoiser
    from dds.evaluation.inference import load_prepared, resolve
    from dds.precision import with_precision
    from dds.smoothing import sampling

    weights = _by_classifier(classifiers, layout.CLASSIFIER)
    outputs = _by_classifier(certificates, certificates_pattern)
    dev = resolve_device(device)
    run = resolve(inference, dev)
    subset = read_images(images).subset(*rows)
    one_shot = load_denoiser(denoiser, sigma, dev, run)
    models = {name: load_prepared(path, dev, run) for name, path in weights.items()}
    log.info(
        "certifying %d images at sigma=%g with %s: n0=%d, n=%d, alpha=%g",
        len(subset),
        sigma,
        ", ".join(models),
        *(spec[k] for k in ("n0", "n", "alpha")),
    )
    results = sampling.certify_images(
        one_shot, models, subset, spec["n0"], spec["n"], spec["alpha"], seed, spec["batch_size"], dev
    )
    for name, table in results.items():
        write_table(with_precision(table, run.precision), outputs[name])


def certify_adversarial(**kwargs) -> None:
    """Certify rows of an adversarial shard with the classifier it was made for: certify_clean with
    one classifier, whose results file is a path of layout.CERTIFICATES_ADVERSARIAL."""
    certify_clean(certificates_pattern=layout.CERTIFICATES_ADVERSARIAL, **kwargs)


def certified_table(
    *,
    clean,
    adversarial,
    norms,
    table,
    tex,
    png,
    svg,
    tsv,
    multiscale,
    spec: dict,
    dataset: str,
    classifier: str,
    denoiser: str,
) -> None:
    """Certified accuracy of one (classifier, denoiser): per-example TSVs per sigma, the
    multi-scale cascade's per-example results (with the stage where it stopped), the long
    table (per sigma, multi-scale, adversarial sets), its LaTeX and the certified-accuracy curve.
    Each input file's sigma, attack and epsilon come from its path; `norms`: the adversarial
    shards, whose per-image L2 perturbation each adversarial certificate is compared with."""
    from dds.precision import precision_of, with_precision
    from dds.reporting import figures
    from dds.reporting.latex import certified_latex
    from dds.smoothing import certified

    by_sigma = {s: read_tables(paths) for s, paths in layout.group(clean, layout.CERTIFICATES_CLEAN, "sigma").items()}
    for path in tsv:
        certified.write_tsv(by_sigma[layout.parse(layout.CERTIFICATES_TSV, path)["sigma"]], path)
    l2 = {
        key: read_tables(paths, ["idx", "l2"])
        for key, paths in layout.group(norms, layout.ADVERSARIAL, "attack", "epsilon").items()
    }
    attacked = {
        (a, e, s): read_tables(paths).merge(l2[(a, e)], on="idx", how="left", validate="one_to_one")
        for (a, e, s), paths in layout.group(
            adversarial, layout.CERTIFICATES_ADVERSARIAL, "attack", "epsilon", "sigma"
        ).items()
    }
    cascade = certified.multiscale_examples(by_sigma, spec["alpha"], spec["p0"])
    write_table(with_precision(cascade, precision_of(clean)), multiscale)
    result = certified.certified_table(classifier, denoiser, by_sigma, attacked, spec["radii"], cascade)
    result = with_precision(result, precision_of([*clean, *adversarial]))
    write_table(result, table)
    caption = (
        f"{classifier} on {dataset}: certified accuracy through {denoiser} (alpha={spec['alpha']:g}, n={spec['n']})"
    )
    write_text(certified_latex(result, caption, f"tab:{dataset}-{classifier}-{denoiser}-certified"), tex)
    figures.certified_figure(
        certified.certified_curves(by_sigma, cascade, spec["radii"]), f"{classifier}, denoiser {denoiser}", png, svg
    )

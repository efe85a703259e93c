"""The certification rules: CERTIFY per shard and sigma, and the certified tables."""

import logging

import numpy as np

from dds import layout
from dds.device import resolve_device
from dds.diffusion.loading import load_denoiser
from dds.evaluation.inference import load_prepared
from dds.io import (
    read_images,
    read_tables,
    write_table,
    write_text,
)
from dds.reporting import figures
from dds.smoothing import certified as certified_mod

log = logging.getLogger(__name__)


def certify(sigma: float, spec: dict, seed: int, device: str, images_path, rows, denoiser_path,
            classifier_paths: dict, out_paths: dict, inference: dict | None = None) -> None:
    """Certify rows [start, stop) of an image file with every classifier in `classifier_paths`,
    fused through one denoiser at one sigma; one Parquet of per-example results each."""
    from dds.evaluation.inference import resolve
    from dds.smoothing import sampling as certification

    dev = resolve_device(device)
    run = resolve(inference, dev)
    images = read_images(images_path).subset(*rows)
    denoiser = load_denoiser(denoiser_path, sigma, dev, run)
    models = {name: load_prepared(path, dev, run) for name, path in classifier_paths.items()}
    log.info("certifying %d images at sigma=%g with %s: n0=%d, n=%d, alpha=%g", len(images), sigma,
             ", ".join(models), spec["n0"], spec["n"], spec["alpha"])
    results = certification.certify_images(denoiser, models, images, spec["n0"], spec["n"], spec["alpha"], seed,
                                           spec["batch_size"], dev)
    for name, table in results.items():
        write_table(table, out_paths[name])


def certified(dataset: str, classifier: str, denoiser: str, sigmas, shards, adversarial_sets, spec: dict,
              table_path, tex_path, png_path, svg_path, tsv_paths: dict, multiscale_path) -> None:
    """Certified accuracy of one (classifier, denoiser): per-example TSVs per sigma, the
    multi-scale cascade's per-example results (with the stage where it stopped), the long
    table (per sigma, multi-scale, adversarial sets), its LaTeX and the certified-accuracy curve.
    `adversarial_sets`: (attack, epsilon) pairs that were certified as well."""
    sigmas = [float(s) for s in sigmas]

    def merged(pattern, columns=None, **values):
        return read_tables(layout.shard_paths(pattern, shards, dataset=dataset, classifier=classifier, denoiser=denoiser, **values),
                       columns)

    clean = {s: merged(layout.CERTIFICATES_CLEAN, sigma=s) for s in sigmas}
    for s in sigmas:
        certified_mod.write_tsv(clean[s], tsv_paths[s])
    adversarial = {}
    for attack, epsilon in adversarial_sets:
        norms = merged(layout.ADVERSARIAL, ["idx", "l2"], attack=attack, epsilon=float(epsilon))
        for s in sigmas:
            certs = merged(layout.CERTIFICATES_ADVERSARIAL, attack=attack, epsilon=float(epsilon), sigma=s)
            adversarial[(attack, float(epsilon), s)] = certs.merge(norms, on="idx", how="left", validate="one_to_one")
    multiscale = certified_mod.multiscale_examples(clean, spec["alpha"], spec["p0"])
    write_table(multiscale, multiscale_path)
    table = certified_mod.certified_table(classifier, denoiser, clean, adversarial, spec["radii"], multiscale)
    write_table(table, table_path)
    caption = f"{classifier} on {dataset}: certified accuracy through {denoiser} (alpha={spec['alpha']:g}, n={spec['n']})"
    write_text(certified_mod.latex_certified(table, caption, f"tab:{dataset}-{classifier}-{denoiser}-certified"),
               tex_path)
    top = max(max(float(f["radius"].max()) for f in clean.values()), max(spec["radii"]))
    grid = np.linspace(0, top * 1.05 or 1.0, 200)
    curves = {f"sigma={s:g}": (grid, certified_mod.curve(clean[s], grid)) for s in sigmas}
    curves[certified_mod.MULTISCALE] = (grid, certified_mod.curve(multiscale, grid))
    figures.certified_figure(curves, f"{classifier}, denoiser {denoiser}", png_path, svg_path)


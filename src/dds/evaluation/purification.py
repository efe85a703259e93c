"""One-shot denoising beside multi-step purification on the same images (docs/science.md §1.7):
each denoiser scored clean, under the unaware PGD, under the adaptive attack whose exact gradient
flows through the whole chain, and under BPDA (dds.evaluation.adaptive), and certified (Cohen et
al.) with the same sampler; each row names the defence's settings (sampler, K, eta, t*)."""

import pandas as pd

from dds.evaluation.adaptive import adaptive_evaluation
from dds.io import ImageSet
from dds.smoothing.sampling import certify_images

CERTIFICATE_COLUMNS = ["classifier", "idx", "label", "predict", "radius", "correct", "pA_lower", "n"]


def attack_settings(spec: dict) -> dict:
    """The adaptive attack settings of the section `spec`: the single target, straight through
    the clamps, with BPDA beside it when asked; no masked or fixed-noise variants."""
    return {
        "targets": ["single"],
        "straight_through": True,
        "compare_masked": False,
        "compare_bpda": spec["bpda"],
        "fixed_noise": False,
        "eot_draws": spec["eot_draws"],
        "draws_per_pass": spec["draws_per_pass"],
        "eval_draws": spec["eval_draws"],
    }


def purification_evaluation(
    models: dict,
    denoiser,
    clean: ImageSet,
    unaware: dict,
    attack_spec: dict,
    spec: dict,
    certify: dict,
    names: dict,
    seed: int,
    batch_size: int,
    device,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attack rows, certificates) of `denoiser` defending each of `models` (name -> classifier):
    the attack rows as dds.evaluation.adaptive writes them, at the section's epsilon, from
    `unaware` (classifier name -> its unaware PGD images of `clean`); the certificates at
    certify's n0, n and alpha when spec["certify"] (one pass of the chain serves every
    classifier). `names`: the attack and the denoiser."""
    frames = [
        adaptive_evaluation(
            model,
            denoiser,
            clean,
            {float(spec["epsilon"]): unaware[name]},
            attack_spec,
            attack_settings(spec),
            {"classifier": name, **names},
            seed,
            batch_size,
            device,
        )
        for name, model in models.items()
    ]
    settings = denoiser.settings()
    results = pd.concat(frames, ignore_index=True).assign(**settings)
    certificates = pd.DataFrame(columns=CERTIFICATE_COLUMNS)
    if spec["certify"]:
        found = certify_images(
            denoiser, models, clean, certify["n0"], certify["n"], certify["alpha"], seed, certify["batch_size"], device
        )
        certificates = pd.concat(
            [rows.assign(classifier=name)[CERTIFICATE_COLUMNS] for name, rows in found.items()], ignore_index=True
        )
    certificates = certificates.assign(denoiser=names["denoiser"], sigma=denoiser.sigma, **settings)
    return results, certificates

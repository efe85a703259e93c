"""One function per workflow stage: read the stage's input files, compute, write its outputs.
The Snakemake scripts only translate `snakemake.*` into these calls.

Each function imports the heavy libraries it needs itself: a job is a fresh Python
process, and importing diffusers, timm and torchattacks in every one of the workflow's
many small jobs would cost more than most of them compute."""

import logging

import torch

from .device import resolve_device
from .io import ImageSet, read_images, write_images, write_json, write_table
from .seeding import derive_seed

log = logging.getLogger(__name__)


def sample(spec: dict, seed: int, train_path, eval_path, manifest_path) -> None:
    """The training images and the evaluation sample of the config's `dataset` section."""
    from . import data

    train, evaluation = data.sample_splits(spec, seed)
    write_images(train_path, train)
    write_images(eval_path, evaluation)
    write_json(data.manifest(train, evaluation, spec["name"], spec["image_size"], seed), manifest_path)
    log.info("%s: %d training and %d evaluation images of shape %s", spec["name"], len(train), len(evaluation),
             tuple(evaluation.images.shape[1:]))


def train_classifier(name: str, spec: dict, seed: int, device: str, train_path, eval_path, weights_path,
                     metrics_path, checkpoint_dir=None) -> None:
    """Train a classifier on the training images; `checkpoint_dir` keeps a checkpoint after every
    epoch (removed once the weights are written), from which a rerun after an interruption
    continues."""
    from . import classifiers, data, training

    train, heldout = read_images(train_path), read_images(eval_path)
    in_chans, num_classes = train.images.shape[1], int(train.labels.max()) + 1
    mean, std = train.images.mean((0, 2, 3)), train.images.std((0, 2, 3))
    torch.manual_seed(derive_seed(seed, "classifier-init", name))
    model = classifiers.build_classifier(spec["model"], spec["kwargs"], in_chans, num_classes, mean, std,
                                         spec.get("feature_denoising"), resize=spec.get("resize"))
    metrics = classifiers.train_classifier(model, train, heldout, spec["epochs"], spec["batch_size"], spec["lr"],
                                           spec["weight_decay"], derive_seed(seed, "classifier", name),
                                           resolve_device(device), spec.get("adversarial_training"),
                                           augment=spec.get("augment", False), checkpoint_dir=checkpoint_dir,
                                           identity={"spec": spec, "seed": seed, "train": data.fingerprint(train)})
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    classifiers.save_classifier(model, weights_path, spec, in_chans, num_classes)
    write_json(metrics, metrics_path)
    if checkpoint_dir is not None:
        training.discard_checkpoint(checkpoint_dir)


def pretrained_classifier(name: str, spec: dict, weights_path, metrics_path) -> None:
    """A timm classifier with its pretrained weights (cache or `spec["weights"]`), stored like
    a trained one, with its pretrained preprocessing (resize, mean, std) inside."""
    from . import classifiers, pretrained
    from .datasets import NUM_CLASSES

    model = pretrained.load_pretrained(name, spec["model"], spec["kwargs"], spec.get("weights"), spec.get("resize"))
    if model.net.num_classes != NUM_CLASSES:
        raise ValueError(f"classifiers.{name}: {spec['model']} predicts {model.net.num_classes} classes; the "
                         f"ImageNet-1k validation labels need a head with {NUM_CLASSES}")
    classifiers.save_classifier(model, weights_path, spec, 3, model.net.num_classes)
    cfg = model.net.pretrained_cfg
    metrics = {"source": spec.get("weights") or f"timm pretrained ({cfg.get('hf_hub_id') or cfg.get('url')})",
               "parameters": sum(p.numel() for p in model.parameters()), "input_size": model.resize["size"],
               "interpolation": model.resize["mode"], "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    log.info("%s: %s, %d parameters, input resized to %d (%s)", name, metrics["source"], metrics["parameters"],
             metrics["input_size"], metrics["interpolation"])
    write_json(metrics, metrics_path)


def train_denoiser(name: str, spec: dict, seed: int, device: str, train_path, weights_path, metrics_path) -> None:
    from . import diffusion

    train = read_images(train_path)
    torch.manual_seed(derive_seed(seed, "denoiser-init", name))
    unet = diffusion.build_unet(train.images.shape[-1], train.images.shape[1], spec)
    scheduler = diffusion.build_scheduler(spec)
    metrics = diffusion.train_ddpm(unet, scheduler, train, spec["steps"], spec["batch_size"], spec["lr"],
                                   derive_seed(seed, "denoiser", name), resolve_device(device))
    diffusion.save_ddpm(unet, scheduler, weights_path)
    write_json(metrics, metrics_path)


def shard_of(images: ImageSet, shard: int, shard_size: int) -> ImageSet:
    part = images.subset(shard * shard_size, (shard + 1) * shard_size)
    if len(part) == 0:
        raise ValueError(f"shard {shard} is empty: the evaluation sample has {len(images)} images "
                         f"and shards hold {shard_size}")
    return part


def attack(spec: dict, attack_name: str, classifier_name: str, epsilon: float, shard: int, shard_size: int,
           seed: int, batch_size: int, device: str, eval_path, classifier_path, out_path) -> None:
    from . import attacks, classifiers
    from .budget import reach

    dev = resolve_device(device)
    clean = shard_of(read_images(eval_path), shard, shard_size)
    model = classifiers.load_classifier(classifier_path, dev)
    adv = attacks.attack(model, spec, epsilon, clean.images, clean.labels, batch_size,
                         attacks.attack_seed(seed, classifier_name, attack_name, epsilon, shard), dev)
    linf, l2 = attacks.perturbation_norms(clean.images, adv)
    log.info("%s eps=%g on %s shard %d: max Linf %.5f (reach %.5f), mean L2 %.4f", attack_name, epsilon,
             classifier_name, shard, linf.max().item(), reach(spec, epsilon), l2.mean().item())
    write_images(out_path, ImageSet(clean.idx, clean.labels, adv), {"linf": linf.numpy(), "l2": l2.numpy()})


def fetch_checkpoint(url: str, sha256: str | None, out_path) -> None:
    """Download an official checkpoint, verified against `sha256` when the config gives one."""
    from .fetch import download

    actual = download(url, out_path, sha256)
    if sha256 is None:
        log.warning("the config gives no sha256 for %s: this download's is %s. Add `sha256: %s` to the denoiser's "
                    "config to pin it; until then every use is checked against the sha256 recorded at first use",
                    url, actual, actual)


def openai_denoiser(name: str, spec: dict, checkpoint_path, weights_path, metrics_path) -> None:
    """Check an official checkpoint once (sha256, strict load) and write the reference to it
    that every later stage loads (see load_denoiser): its path, name and sha256. Without a
    sha256 in the config, the file's sha256 now is recorded and verified from then on."""
    from . import openai_unet
    from .io import save_tensors, sha256_file

    checkpoint = openai_unet.checkpoint_spec(spec["checkpoint"])
    digest = spec["sha256"] or sha256_file(checkpoint_path)
    eps_model, alphas_cumprod = openai_unet.load_openai_checkpoint(checkpoint_path, checkpoint, spec["sha256"])
    save_tensors({}, weights_path, {"kind": "openai", "checkpoint": checkpoint.name, "path": str(checkpoint_path),
                                    "sha256": digest})
    metrics = {"kind": "openai", "checkpoint": checkpoint.name, "path": str(checkpoint_path), "sha256": digest,
               "sha256_from": "config" if spec["sha256"] else "first use", "url": spec["url"],
               "parameters": sum(p.numel() for p in eps_model.parameters()), "schedule": checkpoint.schedule,
               "num_timesteps": len(alphas_cumprod), "image_size": checkpoint.unet.image_size}
    log.info("%s: %s verified (sha256 %s, from the %s), %d parameters", name, checkpoint_path, digest,
             metrics["sha256_from"], metrics["parameters"])
    write_json(metrics, metrics_path)


def load_denoiser(denoiser_path, sigma: float, device, run=None):
    """The one-shot denoiser at `sigma` from a denoiser file: a DDPM trained here, or the
    reference to an official checkpoint (whose sha256 is verified at every load). `run`
    (dds.inference.Inference) prepares its network for inference; without it the denoiser
    stays differentiable (the adaptive attack)."""
    from .denoise import OneShotDenoiser
    from .io import load_tensors

    _, meta = load_tensors(denoiser_path)
    if meta.get("kind") == "openai":
        from .openai_unet import load_openai_checkpoint

        eps_model, alphas_cumprod = load_openai_checkpoint(meta["path"], meta["checkpoint"], meta["sha256"], device)
    else:
        from .diffusion import load_ddpm  # diffusers takes seconds to import: only for DDPMs

        eps_model, alphas_cumprod = load_ddpm(denoiser_path, device)
    denoiser = OneShotDenoiser(eps_model if run is None else run.prepare(eps_model), alphas_cumprod, sigma)
    log.info("sigma=%g: timestep %d of %d (abar %.5f)", sigma, denoiser.t, len(alphas_cumprod), denoiser.abar)
    return denoiser


def denoise(sigma: float, seed: int, batch_size: int, device: str, images_path, denoiser_path, classifier_path,
            out_path, predictions_path, inference: dict | None = None) -> None:
    """Denoise an image shard at `sigma`, write the denoised images, and classify them with
    the classifier the set was made for (one job instead of two: see rules/denoise.smk).
    Both models are loaded first, so a bad file stops the job before the denoising."""
    from .denoise import denoise_images
    from .inference import resolve

    dev = resolve_device(device)
    run = resolve(inference, dev)
    source = read_images(images_path)
    model = prepared_classifier(classifier_path, dev, run)
    denoiser = load_denoiser(denoiser_path, sigma, dev, run)
    denoised = ImageSet(source.idx, source.labels, denoise_images(denoiser, source, seed, batch_size, dev))
    log.info("denoised %d images", len(source))
    write_images(out_path, denoised)
    write_table(predictions(model, denoised, batch_size, dev), predictions_path)


def predict(batch_size: int, device: str, images_path, classifier_path, out_path,
            inference: dict | None = None) -> None:
    from .inference import resolve

    dev = resolve_device(device)
    images = read_images(images_path)
    model = prepared_classifier(classifier_path, dev, resolve(inference, dev))
    write_table(predictions(model, images, batch_size, dev), out_path)


def prepared_classifier(path, dev: torch.device, run) -> torch.nn.Module:
    """A classifier file loaded and prepared for inference by `run` (a dds.inference setting)."""
    from .classifiers import load_classifier

    return run.prepare(load_classifier(path, dev))


def predictions(model: torch.nn.Module, images: ImageSet, batch_size: int, dev: torch.device):
    """The per-image predictions table of `model` on `images`, its accuracy logged."""
    from .classify import predictions as table_of

    table = table_of(model, images, batch_size, dev)
    log.info("accuracy %.4f on %d images", table["correct"].mean(), len(table))
    return table


def certify(sigma: float, spec: dict, seed: int, device: str, images_path, rows, denoiser_path,
            classifier_paths: dict, out_paths: dict, inference: dict | None = None) -> None:
    """Certify rows [start, stop) of an image file with every classifier in `classifier_paths`,
    fused through one denoiser at one sigma; one Parquet of per-example results each."""
    from . import certify as certification
    from .inference import resolve

    dev = resolve_device(device)
    run = resolve(inference, dev)
    images = read_images(images_path).subset(*rows)
    denoiser = load_denoiser(denoiser_path, sigma, dev, run)
    models = {name: prepared_classifier(path, dev, run) for name, path in classifier_paths.items()}
    log.info("certifying %d images at sigma=%g with %s: n0=%d, n=%d, alpha=%g", len(images), sigma,
             ", ".join(models), spec["n0"], spec["n"], spec["alpha"])
    results = certification.certify_images(denoiser, models, images, spec["n0"], spec["n"], spec["alpha"], seed,
                                           spec["batch_size"], dev)
    for name, table in results.items():
        write_table(table, out_paths[name])


def blur(kernel_size: int, blur_sigma: float, noise_level: float, seed: int, batch_size: int, device: str,
         images_path, classifier_path, out_path, inference: dict | None = None) -> None:
    """The blur-majority defence on an image shard with `noise_level` noise added (0 for none):
    predictions as is, blurred once and twice, and their majority, with a noise_level column."""
    from . import blur as blur_defence
    from .inference import resolve

    dev = resolve_device(device)
    images = blur_defence.add_noise(read_images(images_path), noise_level, seed)
    model = prepared_classifier(classifier_path, dev, resolve(inference, dev))
    table = blur_defence.blur_predictions(model, images, kernel_size, blur_sigma, batch_size, dev)
    table["noise_level"] = float(noise_level)
    summary = blur_defence.blur_table(table).iloc[0]
    log.info("noise %g: acc NS %.4f SS %.4f DS %.4f majority %.4f, rejected %.4f of %d images", noise_level,
             summary["acc_ns"], summary["acc_ss"], summary["acc_ds"], summary["acc_maj"], summary["reject_rate"],
             summary["n"])
    write_table(table, out_path)


def _first(paths, count: int) -> ImageSet:
    """The first `count` images of a sharded image set (shards in order)."""
    from .io import concat_images

    return concat_images([read_images(p) for p in paths]).subset(0, count)


def iterations(spec: dict, attack_name: str, classifier_name: str, denoiser_name: str, epsilon: float, steps_grid,
               count: int,
               sigmas, seed: int, batch_size: int, device: str, eval_path, classifier_path, denoiser_path,
               out_path) -> None:
    """Accuracy against PGD iterations at one epsilon (Xie et al.'s Figure 6): the attack rerun
    with each step count on the first `count` evaluation images, undefended and denoised at
    each sigma (the noise draws of the main denoise stage)."""
    import pandas as pd

    from . import attacks, classifiers, classify
    from .denoise import denoise_images

    dev = resolve_device(device)
    clean = read_images(eval_path).subset(0, count)
    model = classifiers.load_classifier(classifier_path, dev)
    denoisers = {float(s): load_denoiser(denoiser_path, float(s), dev) for s in sigmas}
    rows = []
    for steps in steps_grid:
        adv = attacks.attack(model, {**spec, "steps": int(steps)}, epsilon, clean.images, clean.labels, batch_size,
                             attacks.attack_seed(seed, classifier_name, f"{attack_name}-steps{steps}", epsilon, 0),
                             dev)
        linf, l2 = attacks.perturbation_norms(clean.images, adv)
        attacked = ImageSet(clean.idx, clean.labels, adv)
        sets = {"none": attacked}
        sets.update({f"sigma={s:g}": ImageSet(clean.idx, clean.labels, denoise_images(d, attacked, seed, batch_size, dev))
                     for s, d in denoisers.items()})
        for defence, images in sets.items():
            acc = float(classify.predictions(model, images, batch_size, dev)["correct"].mean())
            rows.append({"classifier": classifier_name, "attack": attack_name, "denoiser": denoiser_name,
                         "epsilon": float(epsilon),
                         "steps": int(steps), "defence": defence, "accuracy": acc, "n": len(clean),
                         "linf_max": float(linf.max()), "l2_max": float(l2.max())})
        log.info("%d steps: undefended accuracy %.4f, max Linf %.5f", steps, rows[-len(sets)]["accuracy"],
                 float(linf.max()))
    write_table(pd.DataFrame(rows), out_path)


def adaptive(spec: dict, adaptive_spec: dict, attack_name: str, classifier_name: str, denoiser_name: str,
             sigma: float, seed: int, batch_size: int, device: str, eval_path, unaware_paths: dict, classifier_path,
             denoiser_path, out_path) -> None:
    """The adaptive (EOT) attack through noise, denoiser and classifier at one sigma, for
    each target and epsilon, on the first `num_images` evaluation images; the same images'
    unaware PGD examples (`unaware_paths`: epsilon -> shard paths) evaluated beside them.
    One row per (image, epsilon, attack): single-draw prediction (the noise draw of the
    denoise stage) and the smoothed classifier's PREDICT on fresh draws."""
    import numpy as np
    import pandas as pd

    from . import adaptive as adaptive_attack
    from . import attacks, classifiers, smoothing
    from .certify import sample_counts
    from .denoise import denoise_images

    dev = resolve_device(device)
    count, alpha = adaptive_spec["num_images"], adaptive_spec["alpha"]
    clean = read_images(eval_path).subset(0, count)
    model = classifiers.load_classifier(classifier_path, dev)
    denoiser = load_denoiser(denoiser_path, sigma, dev)
    defended = adaptive_attack.Defended(denoiser, model).to(dev)

    def evaluate(images: torch.Tensor, kind: str, epsilon: float) -> pd.DataFrame:
        data = ImageSet(clean.idx, clean.labels, images)
        single = model(denoise_images(denoiser, data, seed, batch_size, dev).to(dev)).argmax(1).cpu()
        smoothed = [smoothing.predict(sample_counts(denoiser, {"m": model}, data.images[i], int(data.idx[i]),
                                                    adaptive_spec["vote_draws"], "adaptive-vote", seed, batch_size,
                                                    dev)["m"], alpha)
                    for i in range(len(data))]
        linf, l2 = attacks.perturbation_norms(clean.images, images)
        return pd.DataFrame({
            "idx": clean.idx.numpy(), "label": clean.labels.numpy(), "epsilon": float(epsilon), "attack": kind,
            "pred_single": single.numpy(), "correct_single": (single == clean.labels).numpy(),
            "pred_smoothed": np.asarray(smoothed, dtype=np.int64),
            "correct_smoothed": np.asarray(smoothed) == clean.labels.numpy(),
            "linf": linf.numpy(), "l2": l2.numpy(),
        })

    frames = []
    with torch.inference_mode():
        frames.append(evaluate(clean.images, "clean", 0.0))
    for eps in adaptive_spec["epsilons"]:
        unaware = _first(unaware_paths[float(eps)], count)
        if not torch.equal(unaware.idx, clean.idx):
            raise ValueError(f"the unaware adversarial set at epsilon {eps} does not hold the first {count} "
                             "evaluation images in order; delete it and rerun the attack rule")
        with torch.inference_mode():
            frames.append(evaluate(unaware.images, "unaware", eps))
        unaware_acc = frames[-1]["correct_single"].mean()
        for target in adaptive_spec["targets"]:
            adv = adaptive_attack.adaptive_attack(
                defended, spec, float(eps), clean.idx, clean.images, clean.labels, target,
                adaptive_spec["eot_draws"], adaptive_spec["draws_per_pass"],
                derive_seed(seed, "adaptive", classifier_name, attack_name, float(eps), target),
                max(1, batch_size // adaptive_spec["draws_per_pass"]), dev)  # batch_size samples per pass
            with torch.inference_mode():
                frames.append(evaluate(adv, f"adaptive-{target}", eps))
            log.info("eps=%g sigma=%g: single-draw accuracy unaware %.4f, adaptive (%s target) %.4f", eps, sigma,
                     unaware_acc, target, frames[-1]["correct_single"].mean())
    table = pd.concat(frames, ignore_index=True).assign(classifier=classifier_name, denoiser=denoiser_name,
                                                        attack_name=attack_name, sigma=float(sigma))
    write_table(table, out_path)


def transfer(attack_name: str, source: str, denoiser_name: str, epsilons, sigmas, batch_size: int, device: str,
             adversarial_paths: dict, denoised_paths: dict, classifier_paths: dict, out_path,
             inference: dict | None = None) -> None:
    """Adversarial examples made on `source`, classified by every classifier, undefended
    (`adversarial_paths`: epsilon -> shards) and after denoising (`denoised_paths`:
    (sigma, epsilon) -> shards): accuracy per (target, epsilon, defence)."""
    import pandas as pd

    from . import classify
    from .inference import resolve
    from .io import concat_images

    dev = resolve_device(device)
    run = resolve(inference, dev)
    models = {name: prepared_classifier(path, dev, run) for name, path in classifier_paths.items()}
    sets = [(float(e), "none", adversarial_paths[float(e)]) for e in epsilons]
    sets += [(float(e), f"sigma={float(s):g}", denoised_paths[(float(s), float(e))]) for s in sigmas for e in epsilons]
    rows = []
    for eps, defence, paths in sets:
        images = concat_images([read_images(p) for p in paths])
        for target, model in models.items():
            acc = float(classify.predictions(model, images, batch_size, dev)["correct"].mean())
            rows.append({"attack": attack_name, "denoiser": denoiser_name, "source": source, "target": target,
                         "epsilon": eps, "defence": defence, "accuracy": acc, "n": len(images)})
    log.info("%s examples of %s: %d sets classified by %s", attack_name, source, len(sets), ", ".join(models))
    write_table(pd.DataFrame(rows), out_path)


def attention(classifier_name: str, spec: dict, batch_size: int, device: str, classifier_path,
              adversarial_paths: dict, denoised_paths: dict, table_path, png_path) -> None:
    """Where the classifier looks on its first `spec["num_images"]` evaluation images: maps
    (Grad-CAM, and CBAM's spatial attention where the model has it) of the clean images, of
    their PGD versions at each epsilon, and of those denoised at each sigma; per image and
    condition the rank correlation and top-k overlap with the clean map; and a figure grid
    (Grad-CAM) of the first images. `adversarial_paths`: epsilon (0 included) -> shards;
    `denoised_paths`: (sigma, epsilon) -> shards."""
    import math

    import pandas as pd

    from . import attention_maps, classifiers

    dev = resolve_device(device)
    count = spec["num_images"]
    model = classifiers.load_classifier(classifier_path, dev)
    clean = _first(adversarial_paths[0.0], count)
    sets = [("adversarial", float(e), math.nan, _first(adversarial_paths[float(e)], count)) for e in spec["epsilons"]]
    sets += [("denoised", e, s, _first(paths, count)) for (s, e), paths in sorted(denoised_paths.items())]
    for *_, images in sets:
        if not torch.equal(images.idx, clean.idx):
            raise ValueError("attention: an image set does not hold the first evaluation images in order; "
                             "delete it and rerun the rule that makes it")
    frames, gradcam = [], []
    for method in attention_maps.methods_for(model):
        reference = attention_maps.attention_maps(method, model, clean.images, clean.labels, batch_size)
        maps = [attention_maps.attention_maps(method, model, images.images, clean.labels, batch_size)
                for *_, images in sets]
        frames += [attention_maps.attention_shift(reference, m).assign(
            idx=clean.idx.numpy(), classifier=classifier_name, method=method, condition=condition, epsilon=eps,
            sigma=sigma) for (condition, eps, sigma, _), m in zip(sets, maps)]
        if method == "gradcam":
            gradcam = [reference, *maps]
        log.info("%s: %s maps of %d images in %d conditions", classifier_name, method, len(clean), len(sets) + 1)
    write_table(pd.concat(frames, ignore_index=True), table_path)
    # the figure: Grad-CAM of the clean images, attacked at each epsilon, denoised (largest epsilon) at each sigma
    k, largest = spec["figure_images"], max(map(float, spec["epsilons"]))
    columns = [("clean", clean.images[:k], gradcam[0][:k])]
    columns += [(f"PGD eps={eps:g}" if condition == "adversarial" else f"eps={eps:g}, sigma={sigma:g}",
                 images.images[:k], maps[:k])
                for (condition, eps, sigma, images), maps in zip(sets, gradcam[1:])
                if condition == "adversarial" or eps == largest]
    attention_maps.attention_figure(columns, png_path)

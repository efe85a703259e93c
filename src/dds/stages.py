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


def sample(name: str, image_size: int, eval_size: int, seed: int, train_path, eval_path, manifest_path) -> None:
    from . import data

    full = data.load_dataset(name, image_size)
    train, evaluation = data.split(full, eval_size, seed)
    write_images(train_path, train)
    write_images(eval_path, evaluation)
    write_json(data.manifest(train, evaluation, name, image_size, seed), manifest_path)
    log.info("%s: %d training and %d evaluation images of shape %s", name, len(train), len(evaluation),
             tuple(train.images.shape[1:]))


def train_classifier(name: str, spec: dict, seed: int, device: str, train_path, eval_path, weights_path,
                     metrics_path) -> None:
    from . import classifiers

    train, heldout = read_images(train_path), read_images(eval_path)
    in_chans, num_classes = train.images.shape[1], int(train.labels.max()) + 1
    mean, std = train.images.mean((0, 2, 3)), train.images.std((0, 2, 3))
    torch.manual_seed(derive_seed(seed, "classifier-init", name))
    model = classifiers.build_classifier(spec["model"], spec["kwargs"], in_chans, num_classes, mean, std)
    metrics = classifiers.train_classifier(model, train, heldout, spec["epochs"], spec["batch_size"], spec["lr"],
                                           spec["weight_decay"], derive_seed(seed, "classifier", name),
                                           resolve_device(device))
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    classifiers.save_classifier(model, weights_path, spec, in_chans, num_classes)
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


@torch.inference_mode()
def denoise(sigma: float, seed: int, batch_size: int, device: str, images_path, denoiser_path, out_path) -> None:
    from . import diffusion
    from .denoise import OneShotDenoiser, image_noise

    dev = resolve_device(device)
    source = read_images(images_path)
    eps_model, alphas_cumprod = diffusion.load_ddpm(denoiser_path, dev)
    denoiser = OneShotDenoiser(eps_model, alphas_cumprod, sigma)
    log.info("sigma=%g: timestep %d of %d (abar %.5f)", sigma, denoiser.t, len(alphas_cumprod), denoiser.abar)
    out = []
    for start in range(0, len(source), batch_size):
        part = source.subset(start, start + batch_size)
        noise = image_noise(part.idx, part.images.shape[1:], seed, sigma)
        out.append(denoiser(part.images.to(dev), noise.to(dev)).cpu())
        log.info("denoised %d/%d images", start + len(part), len(source))
    write_images(out_path, ImageSet(source.idx, source.labels, torch.cat(out)))


def predict(batch_size: int, device: str, images_path, classifier_path, out_path) -> None:
    from . import classifiers, classify

    dev = resolve_device(device)
    images = read_images(images_path)
    table = classify.predictions(classifiers.load_classifier(classifier_path, dev), images, batch_size, dev)
    log.info("accuracy %.4f on %d images", table["correct"].mean(), len(table))
    write_table(table, out_path)



def certify(sigma: float, spec: dict, seed: int, device: str, images_path, rows, denoiser_path,
            classifier_paths: dict, out_paths: dict) -> None:
    """Certify rows [start, stop) of an image file with every classifier in `classifier_paths`,
    fused through one denoiser at one sigma; one Parquet of per-example results each."""
    from . import certify as certification
    from . import classifiers, diffusion
    from .denoise import OneShotDenoiser

    dev = resolve_device(device)
    images = read_images(images_path).subset(*rows)
    eps_model, alphas_cumprod = diffusion.load_ddpm(denoiser_path, dev)
    denoiser = OneShotDenoiser(eps_model, alphas_cumprod, sigma)
    models = {name: classifiers.load_classifier(path, dev) for name, path in classifier_paths.items()}
    log.info("certifying %d images at sigma=%g with %s: n0=%d, n=%d, alpha=%g", len(images), sigma,
             ", ".join(models), spec["n0"], spec["n"], spec["alpha"])
    results = certification.certify_images(denoiser, models, images, spec["n0"], spec["n"], spec["alpha"], seed,
                                           spec["batch_size"], dev)
    for name, table in results.items():
        write_table(table, out_paths[name])


def blur(kernel_size: int, blur_sigma: float, noise_level: float, seed: int, batch_size: int, device: str,
         images_path, classifier_path, out_path) -> None:
    """The blur-majority defence on an image shard with `noise_level` noise added (0 for none):
    predictions as is, blurred once and twice, and their majority, with a noise_level column."""
    from . import blur as blur_defence
    from . import classifiers

    dev = resolve_device(device)
    images = blur_defence.add_noise(read_images(images_path), noise_level, seed)
    model = classifiers.load_classifier(classifier_path, dev)
    table = blur_defence.blur_predictions(model, images, kernel_size, blur_sigma, batch_size, dev)
    table["noise_level"] = float(noise_level)
    summary = blur_defence.blur_table(table).iloc[0]
    log.info("noise %g: acc NS %.4f SS %.4f DS %.4f majority %.4f, rejected %.4f of %d images", noise_level,
             summary["acc_ns"], summary["acc_ss"], summary["acc_ds"], summary["acc_maj"], summary["reject_rate"],
             summary["n"])
    write_table(table, out_path)

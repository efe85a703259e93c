"""Draws per second of certification sampling: dds's fused denoise+classify (each denoised
batch classified by every classifier, the models prepared with the workflow's inference
settings, dds.evaluation.inference) against a straightforward loop in the style of the reference code
(fp32, no_grad; per classifier, per image: denoise a batch of that image's draws, then
classify; nothing shared across classifiers). Same models, same draws; in fp32 the same counts.

    python benchmarks/certify_throughput.py                      # the demo's trained models
    python benchmarks/certify_throughput.py --random-models      # untrained, same shapes
    python benchmarks/certify_throughput.py --random-models --unet-channels 128 256 256
    python benchmarks/certify_throughput.py --cifar10 --images 2 --draws 64 --batch-size 64
    python benchmarks/certify_throughput.py --compile            # or --precision bf16, ...

--cifar10: a random UNet of the CIFAR-10 checkpoint's shape (52.5M parameters, 32x32) with
the demo's three classifier architectures at 32x32x3. Prints draws per second for both,
their ratio, and whether the counts are identical; run it on an idle machine.
"""

import argparse
import copy
import os
from functools import partial
from pathlib import Path

import torch

from common import add_arguments, inference_settings, timed
from dds.data.sampling import load_digits
from dds.diffusion import ddpm, openai_unet
from dds.diffusion.checkpoints import CHECKPOINTS
from dds.diffusion.one_shot import OneShotDenoiser
from dds.models import classifiers
from dds.smoothing.sampling import noise_draws, sample_counts

RESULTS = Path("results/digits")
NAMES = ("resnet", "cbam-resnet", "vit")


def three_classifiers(size: int, channels: int) -> dict:
    """Untrained classifiers of the demo's three architectures for size x size images."""
    mean, std = [0.5] * channels, [0.5] * channels
    vit = {"img_size": size, "patch_size": 4, "depth": 4}
    return {
        "resnet": classifiers.build_classifier("resnet18", {}, channels, 10, mean, std),
        "cbam-resnet": classifiers.build_classifier(
            "resnet18", {"block_args": {"attn_layer": "cbam"}}, channels, 10, mean, std
        ),
        "vit": classifiers.build_classifier("vit_tiny_patch16_224", vit, channels, 10, mean, std),
    }


def load_models(random_models: bool, unet_channels, device, cifar10: bool = False):
    if cifar10:
        torch.manual_seed(0)
        spec = CHECKPOINTS["cifar10_uncond_50M_500K"]
        eps_model = openai_unet.OpenAIEps(openai_unet.UNetModel(spec.unet), spec.num_timesteps, spec.rescale_timesteps)
        models = three_classifiers(32, 3)
        return eps_model.to(device).eval(), spec.alphas_cumprod(), {k: m.to(device).eval() for k, m in models.items()}
    if random_models:
        torch.manual_seed(0)
        spec = dict(
            block_out_channels=unet_channels,
            layers_per_block=1,
            attention_levels=[len(unet_channels) - 1],
            num_train_timesteps=1000,
            beta_schedule="linear",
        )
        eps_model = ddpm.DiffusersEps(ddpm.build_unet(16, 1, spec)).to(device).eval()
        alphas_cumprod = ddpm.build_scheduler(spec).alphas_cumprod
        return eps_model, alphas_cumprod, {k: m.to(device).eval() for k, m in three_classifiers(16, 1).items()}
    eps_model, alphas_cumprod = ddpm.load_ddpm(RESULTS / "denoisers" / "ddpm.safetensors", device)
    models = {n: classifiers.load_classifier(RESULTS / "classifiers" / f"{n}.safetensors", device) for n in NAMES}
    return eps_model, alphas_cumprod, models


@torch.no_grad()
def straightforward(denoiser, models, images, idx, num, batch_size, seed, device):
    """Per classifier, per image: denoise the image's draws batch by batch, then classify."""
    counts = {}
    for name, model in models.items():
        for image, i in zip(images, idx):
            total = 0
            for start in range(0, num, batch_size):
                stop = min(num, start + batch_size)
                noise = noise_draws(image.shape, seed, denoiser.sigma, i, "estimation", start, stop).to(device)
                denoised = denoiser(image.to(device).repeat(stop - start, 1, 1, 1), noise)
                total = total + torch.bincount(model(denoised).argmax(1), minlength=10).cpu()
            counts[(name, int(i))] = total
    return counts


def fused(denoiser, models, images, idx, num, batch_size, seed, device):
    return {
        (name, int(i)): torch.as_tensor(c)
        for image, i in zip(images, idx)
        for name, c in sample_counts(
            denoiser, models, image, int(i), num, "estimation", seed, batch_size, device
        ).items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--draws", type=int, default=512, help="noise draws per image")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--random-models", action="store_true")
    parser.add_argument(
        "--unet-channels",
        type=int,
        nargs="+",
        default=[32, 64, 64],
        help="UNet widths with --random-models (wider: the UNet dominates, as at the paper's sizes)",
    )
    parser.add_argument("--cifar10", action="store_true", help="the CIFAR-10 checkpoint's UNet shape, random weights")
    add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = inference_settings(args, device)
    eps_model, alphas_cumprod, models = load_models(args.random_models, args.unet_channels, device, args.cifar10)
    denoiser = OneShotDenoiser(eps_model, alphas_cumprod, args.sigma)
    # fused runs dds's way: copies prepared with the inference settings (preparing works in place)
    prepared = OneShotDenoiser(settings.prepare(copy.deepcopy(eps_model)), alphas_cumprod, args.sigma)
    prepared_models = {name: settings.prepare(copy.deepcopy(m)) for name, m in models.items()}
    if args.cifar10:
        images = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        idx = torch.arange(args.images)
    else:
        data = load_digits(16)
        images, idx = data.images[: args.images], data.idx[: args.images]
    draws = args.images * args.draws
    # warm-up, one image each; for compiled models all the batch shapes of the timed run
    straightforward(denoiser, models, images[:1], idx[:1], min(args.draws, args.batch_size), args.batch_size, 0, device)
    warmup, _ = timed(
        lambda: fused(
            prepared,
            prepared_models,
            images[:1],
            idx[:1],
            args.draws if settings.compile else min(args.draws, args.batch_size),
            args.batch_size,
            0,
            device,
        ),
        device,
    )
    seconds, counts = {}, {}
    for label, run, (den, mods) in (
        ("straightforward", straightforward, (denoiser, models)),
        ("fused", fused, (prepared, prepared_models)),
    ):
        seconds[label], counts[label] = timed(
            partial(run, den, mods, images, idx, args.draws, args.batch_size, 0, device), device
        )
    # predictions that moved to another class: half the absolute count differences
    differing = sum(int((counts["fused"][k] - counts["straightforward"][k]).abs().sum()) // 2 for k in counts["fused"])
    unet_params = sum(p.numel() for p in eps_model.parameters()) / 1e6
    print(
        f"device {device}, UNet {unet_params:.1f}M parameters, {len(models)} classifiers, {args.images} images x "
        f"{args.draws} draws, batch {args.batch_size}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"fused: {settings.describe()}" + (f" (warm-up with compilation {warmup:.0f} s)" if settings.compile else ""))
    for label in ("straightforward", "fused"):
        print(f"{label:>16}: {draws / seconds[label]:8.1f} draws/s (each draw classified by all {len(models)})")
    print(
        f"ratio fused / straightforward: {seconds['straightforward'] / seconds['fused']:.2f}x; identical counts: "
        f"{differing == 0}" + (f" ({differing} of {draws * len(models)} predictions moved)" if differing else "")
    )


if __name__ == "__main__":
    main()

"""Draws per second of certification sampling: dds's fused denoise+classify (each denoised
batch classified by every classifier) against a straightforward loop in the style of the
reference code (per classifier, per image: denoise a batch of that image's draws, then
classify; nothing shared across classifiers). Same models, same draws, same counts.

    python benchmarks/certify_throughput.py                      # the demo's trained models
    python benchmarks/certify_throughput.py --random-models      # untrained, same shapes
    python benchmarks/certify_throughput.py --random-models --unet-channels 128 256 256

Prints draws per second for both and their ratio; run it on an idle machine.
"""

import argparse
import time
from pathlib import Path

import torch

from dds import classifiers, diffusion
from dds.certify import noise_draws, sample_counts
from dds.data import load_digits
from dds.denoise import OneShotDenoiser

RESULTS = Path("results/digits")
NAMES = ("resnet", "cbam-resnet", "vit")


def load_models(random_models: bool, unet_channels, device):
    if random_models:
        torch.manual_seed(0)
        spec = dict(block_out_channels=unet_channels, layers_per_block=1, attention_levels=[len(unet_channels) - 1],
                    num_train_timesteps=1000, beta_schedule="linear")
        eps_model = diffusion.DiffusersEps(diffusion.build_unet(16, 1, spec)).to(device).eval()
        alphas_cumprod = diffusion.build_scheduler(spec).alphas_cumprod
        models = {
            "resnet": classifiers.build_classifier("resnet18", {}, 1, 10, [0.5], [0.5]),
            "cbam-resnet": classifiers.build_classifier("resnet18", {"block_args": {"attn_layer": "cbam"}}, 1, 10,
                                                        [0.5], [0.5]),
            "vit": classifiers.build_classifier("vit_tiny_patch16_224", {"img_size": 16, "patch_size": 4, "depth": 4},
                                                1, 10, [0.5], [0.5]),
        }
        return eps_model, alphas_cumprod, {k: m.to(device).eval() for k, m in models.items()}
    eps_model, alphas_cumprod = diffusion.load_ddpm(RESULTS / "denoisers" / "ddpm.safetensors", device)
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
    return {(name, int(i)): torch.as_tensor(c)
            for image, i in zip(images, idx)
            for name, c in sample_counts(denoiser, models, image, int(i), num, "estimation", seed, batch_size,
                                         device).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--draws", type=int, default=512, help="noise draws per image")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--random-models", action="store_true")
    parser.add_argument("--unet-channels", type=int, nargs="+", default=[32, 64, 64],
                        help="UNet widths with --random-models (wider: the UNet dominates, as at the paper's sizes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    eps_model, alphas_cumprod, models = load_models(args.random_models, args.unet_channels, device)
    denoiser = OneShotDenoiser(eps_model, alphas_cumprod, args.sigma)
    data = load_digits(16)
    images, idx = data.images[: args.images], data.idx[: args.images]
    draws = args.images * args.draws
    fused(denoiser, models, images[:1], idx[:1], args.batch_size, args.batch_size, 0, device)  # warm-up
    timings = {}
    for label, run in (("straightforward", straightforward), ("fused", fused)):
        start = time.perf_counter()
        counts = run(denoiser, models, images, idx, args.draws, args.batch_size, 0, device)
        timings[label] = time.perf_counter() - start
        timings[label + " counts"] = counts
    same = all(torch.equal(timings["fused counts"][k], timings["straightforward counts"][k])
               for k in timings["fused counts"])
    unet_params = sum(p.numel() for p in eps_model.parameters()) / 1e6
    print(f"device {device}, UNet {unet_params:.1f}M parameters, {len(models)} classifiers, {args.images} images x {args.draws} draws, "
          f"batch {args.batch_size}, {args.threads} thread(s)")
    for label in ("straightforward", "fused"):
        print(f"{label:>16}: {draws / timings[label]:8.1f} draws/s (each draw classified by all {len(models)})")
    print(f"ratio fused / straightforward: {timings['straightforward'] / timings['fused']:.2f}x; identical counts: {same}")


if __name__ == "__main__":
    main()

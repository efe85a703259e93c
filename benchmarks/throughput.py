"""Images per second of denoising and classification at the paper's sizes, random weights:
dds's path (the workflow's denoise and predict code, models prepared with dds.evaluation.inference,
batches of many images) against a straightforward loop written the way the published
reference code runs them (fp32, eval mode under torch.no_grad, no channels_last, each batch
holding one image's noise draws).

    python benchmarks/throughput.py                                 # both setups, CPU-sized runs
    python benchmarks/throughput.py --setup cifar10 --images 8 --draws 32 --batch-size 256
    python benchmarks/throughput.py --setup imagenet --images 1 --draws 2   # ~20 s per UNet image per core
    python benchmarks/throughput.py --compile --precision bf16      # override the config's settings

Setups: cifar10 is the improved-diffusion UNet of cifar10_uncond_50M_500K's shape (32x32,
52.5M parameters) and ResNet-50 fed 224x224 (the 32x32 images resized inside the model);
imagenet is the guided-diffusion UNet of 256x256_diffusion_uncond's shape (552.8M) and
CoAtNet-2 (coatnet_rmlp_2_rw_384) fed 384x384. On a GPU it also prints the FLOP/s reached
(counted with torch.utils.flop_counter) as a fraction of the GPU's dense bf16/fp16
tensor-core peak (PEAK_TFLOPS, from the vendors' data sheets).
"""

import argparse
import os
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import add_arguments, inference_settings, timed
from dds.diffusion import openai_unet
from dds.diffusion.checkpoints import checkpoint_spec
from dds.diffusion.one_shot import OneShotDenoiser, denoise_images
from dds.evaluation import classify
from dds.io import ImageSet
from dds.models import classifiers

SETUPS = {
    "cifar10": {
        "checkpoint": "cifar10_uncond_50M_500K",
        "classifier": "resnet50",
        "classes": 10,
        "resize": {"size": 224, "mode": "bilinear"},
    },
    "imagenet": {
        "checkpoint": "256x256_diffusion_uncond",
        "classifier": "coatnet_rmlp_2_rw_384",
        "classes": 1000,
        "resize": {"size": 384, "mode": "bicubic"},
    },
}
# (images, noise draws per image, dds batch size) when not given: on a CPU small enough to
# finish in minutes (one 256x256 UNet forward is ~2.2 TFLOP, tens of seconds on one core)
SIZES = {
    ("cpu", "cifar10"): (4, 16, 64),
    ("cpu", "imagenet"): (1, 2, 2),
    ("cuda", "cifar10"): (16, 64, 512),
    ("cuda", "imagenet"): (4, 8, 32),
}
# dense bf16/fp16 tensor-core peak in TFLOP/s by a part of torch.cuda.get_device_name();
# the first match counts, so longer names come before their prefixes (A100 before A10)
PEAK_TFLOPS = [
    ("H200", 989),
    ("H100 PCIe", 756),
    ("H100 NVL", 835),
    ("H100", 989),
    ("A100", 312),
    ("L40S", 362),
    ("L4", 121),
    ("A10", 125),
    ("RTX 4090", 165),
    ("V100", 125),
    ("T4", 65),
]
SIGMA = 0.5


def peak_tflops(device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((peak for part, peak in PEAK_TFLOPS if part in name), None)


def build_models(setup: dict, device):
    """Random-weight UNet (as its epsilon network), its schedule, and the classifier."""
    spec = checkpoint_spec(setup["checkpoint"])
    eps = openai_unet.OpenAIEps(openai_unet.UNetModel(spec.unet), spec.num_timesteps, spec.rescale_timesteps)
    model = classifiers.build_classifier(
        setup["classifier"], {}, 3, setup["classes"], [0.5] * 3, [0.5] * 3, resize=setup["resize"]
    )
    return eps.to(device).eval(), spec.alphas_cumprod(), model.to(device).eval()


def flops_per_image(setup: dict) -> dict[str, float]:
    """FLOPs of one image through each model, counted on the meta device (no memory, no time)."""
    spec = checkpoint_spec(setup["checkpoint"])
    size = spec.unet.image_size
    with torch.device("meta"):
        eps, _, model = build_models(setup, "meta")
        x = torch.empty(1, 3, size, size)
        counts = {}
        calls = {"denoise": lambda: eps(x, torch.zeros(1, dtype=torch.long)), "classify": lambda: model(x)}
        for name, call in calls.items():
            with FlopCounterMode(display=False) as counter:
                call()
            counts[name] = counter.get_total_flops()
    return counts


def draws_set(images: torch.Tensor, draws: int) -> ImageSet:
    """Each image `draws` times, with distinct indices (so each copy gets its own noise)."""
    copies = images.repeat_interleave(draws, 0)
    idx = torch.arange(len(copies))
    return ImageSet(idx, torch.zeros_like(idx), copies)


def reference_denoise(denoiser, images, draws, device):
    """Per image: one batch of its noisy copies, denoised in fp32 (the reference code's loop)."""
    with torch.no_grad():
        for image in images:
            batch = image.to(device).repeat(draws, 1, 1, 1)
            denoiser(batch, torch.randn_like(batch)).cpu()


def reference_classify(model, images, draws, device):
    with torch.no_grad():
        for image in images:
            model(image.to(device).repeat(draws, 1, 1, 1)).argmax(1).cpu()


def measure(name: str, setup: dict, args, settings, device) -> list[dict]:
    images, draws, batch = (
        given or default
        for given, default in zip((args.images, args.draws, args.batch_size), SIZES[(device.type, name)])
    )
    size = checkpoint_spec(setup["checkpoint"]).unet.image_size
    torch.manual_seed(0)
    x = torch.rand(images, 3, size, size)
    eps, alphas_cumprod, model = build_models(setup, device)
    reference_denoiser = OneShotDenoiser(eps, alphas_cumprod, SIGMA)
    # dds's path gets its own copies: preparing changes a model in place (layout, compilation)
    eps_dds, _, model_dds = build_models(setup, device)
    eps_dds.load_state_dict(eps.state_dict())
    model_dds.load_state_dict(model.state_dict())
    dds_denoiser = OneShotDenoiser(settings.prepare(eps_dds), alphas_cumprod, SIGMA)
    dds_model = settings.prepare(model_dds)
    data = draws_set(x, draws)
    paths = {
        "denoise": (
            lambda imgs, n: reference_denoise(reference_denoiser, imgs, n, device),
            lambda d: denoise_images(dds_denoiser, d, 0, batch, device),
        ),
        "classify": (
            lambda imgs, n: reference_classify(model, imgs, n, device),
            lambda d: classify.logits(dds_model, d.images, batch, device),
        ),
    }
    flops = flops_per_image(setup)
    rows = []
    for stage, (reference, ours) in paths.items():
        reference(x[:1], 1)  # warm-up: allocator, oneDNN primitives, cuDNN autotuning
        # compiled models compile once per batch shape: warm up with the timed shapes
        first, _ = timed(partial(ours, data if settings.compile else draws_set(x[:1], 1)), device)
        seconds = {
            "reference": timed(partial(reference, x, draws), device)[0],
            "dds": timed(partial(ours, data), device)[0],
        }
        rows.append(
            {
                "setup": name,
                "stage": stage,
                "images": images,
                "draws": draws,
                "batch": batch,
                "gflop": flops[stage] / 1e9,
                "compile_s": first - seconds["dds"] if settings.compile else None,
                **{k: images * draws / s for k, s in seconds.items()},
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=[*SETUPS, "all"], default="all")
    parser.add_argument("--images", type=int, help="distinct images (default: small on a CPU, see SIZES)")
    parser.add_argument("--draws", type=int, help="noise draws per image: the reference loop's batch")
    parser.add_argument("--batch-size", type=int, help="dds's batch (images of many draws)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = inference_settings(args, device)
    gpu, peak = peak_tflops(device)
    print(
        f"device {gpu}, {args.threads} CPU thread(s), load average {os.getloadavg()[0]:.2f}; "
        f"dds: {settings.describe()}; reference: fp32, no_grad, one image's draws per batch"
    )
    if device.type == "cuda":
        print(f"peak (dense bf16/fp16 tensor cores): {f'{peak} TFLOP/s' if peak else 'unknown GPU, see PEAK_TFLOPS'}")
    header = (
        f"{'setup':9} {'stage':9} {'images x draws':>14} {'batch':>6} {'GFLOP/img':>10} {'reference/s':>12} "
        f"{'dds/s':>9} {'ratio':>6} {'dds TFLOP/s':>12}"
    )
    print(header + (" % of peak" if peak else ""))
    for name in SETUPS if args.setup == "all" else [args.setup]:
        for row in measure(name, SETUPS[name], args, settings, device):
            reached = row["dds"] * row["gflop"] / 1e3
            line = (
                f"{row['setup']:9} {row['stage']:9} {row['images']:>6} x {row['draws']:<5} {row['batch']:>6} "
                f"{row['gflop']:>10.1f} {row['reference']:>12.2f} {row['dds']:>9.2f} "
                f"{row['dds'] / row['reference']:>5.2f}x {reached:>12.3f}"
            )
            line += f" {100 * reached / peak:8.1f}%" if peak else ""
            line += f"  (compilation {row['compile_s']:.0f} s)" if row["compile_s"] is not None else ""
            print(line, flush=True)


if __name__ == "__main__":
    main()

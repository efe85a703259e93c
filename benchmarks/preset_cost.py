"""What a preset costs: the networks' work per image (FLOPs counted by torch, CPU seconds
measured here) times the network evaluations the preset's jobs make, scaled to a GPU.

    python benchmarks/preset_cost.py                  # both presets, 1 CPU thread
    python benchmarks/preset_cost.py --gpu-tflops 40 150

The per-image cost of each network (the paper-size models, random weights: the cost does not
depend on them) is measured once: FLOPs with torch.utils.flop_counter (forward; a backward
pass counted as twice a forward) and CPU seconds per image at a small batch. The GPU time is
the counted FLOPs divided by an assumed sustained GPU rate (--gpu-tflops, TFLOP/s); the
measured CPU rate (FLOPs / CPU seconds) says how far from the GPU the CPU is. Printed as a
Markdown table per preset and stage.
"""

import argparse
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from dds.config import validate
from dds.diffusion.checkpoints import CHECKPOINTS
from dds.diffusion.openai_unet import UNetModel
from dds.models.classifiers import build_classifier

REPO = Path(__file__).resolve().parents[1]


def networks(config: dict) -> dict:
    """name -> (module, input shape, timestep or None) for the preset's denoiser and classifiers."""
    out = {}
    for name, spec in config["denoisers"].items():
        unet = CHECKPOINTS[spec["checkpoint"]].unet
        out[name] = (UNetModel(unet).eval(), (3, unet.image_size, unet.image_size), True)
    size = config["dataset"]["image_size"]
    for name, spec in config["classifiers"].items():
        resize = spec.get("resize") or {"size": 384, "mode": "bicubic"}  # CoAtNet's pretrained input
        model = build_classifier(
            spec["model"], spec["kwargs"], 3, 1000 if spec["pretrained"] else 10, [0.5] * 3, [0.5] * 3, resize=resize
        ).eval()
        out[name] = (model, (3, size, size), False)
    return out


def measure(model, shape, timestep: bool, batch: int, repeats: int) -> dict:
    """FLOPs per image (forward) and CPU seconds per image, forward and forward+backward."""
    x = torch.rand(batch, *shape)
    args = (x * 2 - 1, torch.full((batch,), 100.0)) if timestep else (x,)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    flops = counter.get_total_flops() / batch
    with torch.no_grad():
        model(*args)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(*args)
        forward = (time.perf_counter() - start) / (repeats * batch)
    result = {"gflops": flops / 1e9, "cpu_s": forward}
    if not timestep:  # the attacks and the training differentiate through the classifiers
        xg = x.clone().requires_grad_()
        start = time.perf_counter()
        model(xg).sum().backward()
        result["cpu_s_backward"] = (time.perf_counter() - start) / batch
    return result


def workload(config: dict) -> dict:
    """Network evaluations per stage: {stage: {network: (forward images, backward images)}};
    a training or attack step counts one forward and one backward pass."""
    n, attack = config["dataset"]["eval_size"], config["attacks"]["pgd"]
    eps = [e for e in attack["epsilons"] if e > 0]
    sets = len(eps) + 1  # and the clean set
    sigmas, classifiers = len(config["sigmas"]), list(config["classifiers"])
    (denoiser,) = config["denoisers"]
    cert = config["certify"]
    work = {"train": {}, "attack": {}, "denoise": {}, "classify": {}, "certify": {}, "blur": {}, "transfer": {}}
    for c in classifiers:
        spec = config["classifiers"][c]
        if not spec["pretrained"]:
            images = spec["epochs"] * 50_000
            work["train"][c] = (images, images)
        work["attack"][c] = (n * len(eps) * attack["steps"],) * 2
        work["classify"][c] = (n * sets * (1 + sigmas), 0)
        work["certify"][c] = (cert["num_images"] * (cert["n0"] + cert["n"]) * sigmas, 0) if cert["enabled"] else (0, 0)
        blur = config["blur"]
        work["blur"][c] = (3 * n * (len(blur["noise_levels"]) + sets), 0) if blur["enabled"] else (0, 0)
        others = len(classifiers) - 1
        work["transfer"][c] = (others * n * sets * (1 + sigmas), 0) if config["transfer"]["enabled"] else (0, 0)
    work["denoise"][denoiser] = (n * sets * len(classifiers) * sigmas, 0)
    # certification denoises each draw once for all classifiers
    work["certify"][denoiser] = (cert["num_images"] * (cert["n0"] + cert["n"]) * sigmas, 0)
    return work


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cifar10-paper", "imagenet-paper"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--gpu-tflops",
        type=float,
        nargs=2,
        default=[40.0, 150.0],
        help="assumed sustained GPU rate, pessimistic and optimistic (TFLOP/s)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    low, high = args.gpu_tflops
    for name in args.presets:
        config = validate(
            yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text()),
            REPO / "workflow" / "schemas" / "config.schema.yaml",
        )
        costs = {}
        for net, (model, shape, timestep) in networks(config).items():
            costs[net] = measure(model, shape, timestep, batch=1 if shape[-1] > 64 else 8, repeats=2)
            print(f"{name} {net}: {costs[net]}", flush=True)
        print(
            f"\n### {name}\n\n| stage | TFLOP | CPU hours (measured rate) | GPU hours at {high:g} / {low:g} TFLOP/s |"
        )
        print("|---|---:|---:|---:|")
        total_flops = total_cpu = 0.0
        for stage, nets in workload(config).items():
            flops = sum(costs[k]["gflops"] * 1e9 * (f + 2 * b) for k, (f, b) in nets.items())
            cpu = sum(costs[k]["cpu_s"] * f + costs[k].get("cpu_s_backward", 0) * b for k, (f, b) in nets.items())
            if flops:
                print(
                    f"| {stage} | {flops / 1e12:,.0f} | {cpu / 3600:,.0f} | "
                    f"{flops / high / 1e12 / 3600:,.1f} / {flops / low / 1e12 / 3600:,.1f} |"
                )
            total_flops, total_cpu = total_flops + flops, total_cpu + cpu
        print(
            f"| all | {total_flops / 1e12:,.0f} | {total_cpu / 3600:,.0f} | "
            f"{total_flops / high / 1e12 / 3600:,.1f} / {total_flops / low / 1e12 / 3600:,.1f} |"
        )
        rate = {k: c["gflops"] / c["cpu_s"] for k, c in costs.items()}
        print("\nmeasured CPU rate (GFLOP/s, forward): " + ", ".join(f"{k} {v:.1f}" for k, v in rate.items()) + "\n")


if __name__ == "__main__":
    main()

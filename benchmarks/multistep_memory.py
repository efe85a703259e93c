"""Peak memory of backpropagation through the multi-step denoiser's reverse chain (the adaptive
attack's gradient; docs/science.md §1.7), with gradient checkpointing per step and without, for
K reverse steps, on the demo's DDPM (config.yaml `denoisers.ddpm`: 16x16, one channel).

    python benchmarks/multistep_memory.py                  # CPU, 2 cores: about 5 min
    python benchmarks/multistep_memory.py --device cuda --batch-size 256

What is measured is one forward and backward to the input images (random weights: memory and
time do not depend on them). On CUDA: torch.cuda.max_memory_allocated during it, less what was
allocated before (weights, inputs). On the CPU each measurement runs in a fresh process, since
a process's peak would hide the next measurement's: the peak of live tensor bytes (counted as
benchmarks/activation_memory.py does; what CUDA's allocator would have to hold), and the peak
RSS (ru_maxrss) less the RSS with the model built and the inputs drawn, which adds what glibc's
malloc keeps of freed memory: the recomputation of each step in the backward pass allocates and
frees a step's activations again, and the heap does not give all of it back.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

import torch

from activation_memory import LiveBytes
from common import timed
from dds.diffusion.ddpm import DiffusersEps, build_scheduler, build_unet
from dds.diffusion.multistep import SAMPLERS, MultiStepDenoiser

DEMO_UNET = {"block_out_channels": [32, 64, 64], "layers_per_block": 1, "attention_levels": [2]}
DEMO_SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "linear"}
MIB = 2**20


def rss() -> int:
    """The process's resident set now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(steps: int, checkpointing: bool, args) -> dict:
    """MiB above the baseline at the peak of one forward and backward (on the CPU: of live
    tensors, and of the RSS), and its seconds (the best of `repeats` runs)."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    eps_model = DiffusersEps(build_unet(16, 1, DEMO_UNET)).to(device).eval()
    abar = build_scheduler(DEMO_SCHEDULE).alphas_cumprod
    denoiser = MultiStepDenoiser(eps_model, abar, args.sigma, args.sampler, steps)
    denoiser.checkpointing = checkpointing
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((args.batch_size, 1, 16, 16), generator=gen).to(device).requires_grad_(True)
    noise = torch.randn((args.batch_size, *denoiser.noise_shape((1, 16, 16))), generator=gen).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = rss()

    def backward():
        return torch.autograd.grad(denoiser(x, noise).sum(), x)

    backward()  # measured, and the warm-up of the timed run (first calls set up kernels)
    if device.type == "cuda":
        peak = {"mib": (torch.cuda.max_memory_allocated(device) - base) / MIB}
    else:
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        with LiveBytes([*eps_model.parameters(), *eps_model.buffers(), x, noise]) as live:
            backward()
        peak = {"mib": live.peak / MIB, "rss_mib": (rss_peak - base) / MIB}
    return {**peak, "seconds": min(timed(backward, device)[0] for _ in range(args.repeats))}


def measured(steps: int, checkpointing: bool, args) -> dict:
    if args.device != "cpu":
        return measure(steps, checkpointing, args)
    command = [sys.executable, __file__, *sys.argv[1:], "--one", str(steps), str(int(checkpointing))]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddpm")
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (the best counts)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # a CPU measurement's own process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], bool(args.one[1]), args)))
        return
    threads = f", {args.threads} thread(s)" if args.threads else ""
    print(f"{args.sampler}, sigma {args.sigma:g}, batch {args.batch_size} of 1x16x16, on {args.device}{threads}\n")
    rss = args.device == "cpu"
    print("| K | checkpointed MiB | plain MiB |" + (" checkpointed RSS MiB | plain RSS MiB |" if rss else ""), end="")
    print(" checkpointed s | plain s |\n|---:|---:|---:|" + ("---:|---:|" if rss else "") + "---:|---:|")
    for steps in args.steps:
        ckpt, plain = (measured(steps, flag, args) for flag in (True, False))
        cells = [ckpt["mib"], plain["mib"], *([ckpt["rss_mib"], plain["rss_mib"]] if rss else [])]
        mib = " | ".join(f"{m:,.1f}" for m in cells)
        print(f"| {steps} | {mib} | {ckpt['seconds']:.2f} | {plain['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

"""What the demo's DDPM gives for its training time: the one-shot denoiser's mean squared error on
the evaluation images at each sigma, trained for some steps on every timestep or on the timesteps
up to t*(max_sigma) only (config key denoisers.<name>.max_sigma), beside a reference DDPM file.

    python benchmarks/ddpm_timesteps.py results/digits/sample \\
        --runs 600:all 600:1.0 400:1.0 300:1.0 --reference results/digits/denoisers/ddpm.safetensors

Each run trains the demo's UNet (config.yaml `denoisers.ddpm`: its network, batch and lr) with
dds.diffusion.ddpm.train_ddpm on one thread, in a process of its own (so that two runs share the
machine's two cores), and prints one JSON line: steps, timesteps trained on, seconds, and the MSE
of the [0, 1] image at each sigma (the same seeded noise for every model).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from dds.diffusion import ddpm
from dds.diffusion.one_shot import OneShotDenoiser, sigma_timestep
from dds.io import read_images

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["denoisers"]["ddpm"]
SIGMAS = (0.25, 0.5, 1.0)


@torch.inference_mode()
def denoising_mse(path, images) -> dict:
    eps, alphas_cumprod = ddpm.load_ddpm(path)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    return {
        sigma: round(float(((OneShotDenoiser(eps, alphas_cumprod, sigma)(images, noise) - images) ** 2).mean()), 5)
        for sigma in SIGMAS
    }


def train(sample: Path, steps: int, max_sigma: str, out: Path) -> dict:
    torch.set_num_threads(1)
    train_set = read_images(sample / "train.parquet")
    torch.manual_seed(1)
    unet = ddpm.build_unet(train_set.images.shape[-1], train_set.images.shape[1], SPEC)
    scheduler = ddpm.build_scheduler(SPEC)
    top = None if max_sigma == "all" else sigma_timestep(scheduler.alphas_cumprod, float(max_sigma))
    record = ddpm.train_ddpm(unet, scheduler, train_set, steps, SPEC["batch_size"], SPEC["lr"], 2, "cpu", top)
    ddpm.save_ddpm(unet, scheduler, out)
    return {"steps": steps, "timesteps": record["timesteps"], "seconds": record["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sample", type=Path, help="the sample stage's folder (train.parquet, eval.parquet)")
    parser.add_argument("--runs", nargs="+", default=["600:all", "600:1.0"], help="STEPS:MAX_SIGMA (or :all)")
    parser.add_argument("--reference", type=Path, help="a DDPM file to score beside them")
    parser.add_argument("--out", type=Path, default=Path("ddpm-timesteps"), help="where the trained models go")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single run, in its own process
    args = parser.parse_args()
    images = read_images(args.sample / "eval.parquet").images
    if args.one:
        steps, max_sigma = args.one.split(":")
        out = args.out / f"{steps}-{max_sigma}.safetensors"
        record = train(args.sample, int(steps), max_sigma, out)
        print(json.dumps({**record, "mse": denoising_mse(out, images)}), flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.reference:
        print(json.dumps({"reference": str(args.reference), "mse": denoising_mse(args.reference, images)}), flush=True)
    for pair in range(0, len(args.runs), 2):
        procs = [
            subprocess.Popen([sys.executable, __file__, str(args.sample), "--out", str(args.out), "--one", run])
            for run in args.runs[pair : pair + 2]
        ]
        if any(p.wait() for p in procs):
            sys.exit("a run failed")


if __name__ == "__main__":
    main()

"""How long Snakemake takes to plan the workflow (`snakemake -n`: start, read and validate the
config, build the DAG) as the grid grows, up to the ImageNet scale with certification sharded
for a cluster (100 shards). Target: under 10 s for that preset.

The grids are overlays on the embedded default (config.yaml: four classifiers, every
analysis on): 1000 evaluation images in 1 to 100 shards, more sigmas and epsilons,
certification of every image. The last row is the ImageNet preset itself at 100 shards.
Each dry run plans from scratch, in an empty working directory.

    python benchmarks/dag_build.py [--repeat 3]

Prints one row per grid: jobs planned, wall-clock seconds (best of --repeat) and the CPU
seconds of that run (the wall time also counts waiting for a busy CPU).
"""

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIGMAS = [0.12, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
# the default's epsilons first: its certification, adaptive attack and attention maps name them
EPSILONS = [0.02, 0.05, 0.1, 0.2, 0.005, 0.01, 0.03, 0.5]
IMAGES = 1000


def default_overlay(shards: int, sigmas: int, epsilons: int) -> dict:
    return {
        "dataset": {"eval_size": IMAGES, "shard_size": IMAGES // shards},
        "sigmas": SIGMAS[:sigmas],
        # the default's DDPM is trained up to sigma 1.0 only: up to the grid's largest here
        "denoisers": {"ddpm": {"max_sigma": max(SIGMAS[:sigmas])}},
        "attacks": {"pgd": {"epsilons": sorted(EPSILONS[:epsilons])}},
        "certify": {"enabled": True, "num_images": IMAGES},
    }


# (name, base config, overlay)
GRIDS = [
    (
        f"default, {shards} shards, {sigmas} sigmas, {epsilons} eps",
        "config.yaml",
        default_overlay(shards, sigmas, epsilons),
    )
    for shards, sigmas, epsilons in [(1, 3, 4), (10, 4, 6), (25, 4, 6), (50, 4, 6), (100, 4, 6), (100, 8, 8)]
] + [("ImageNet preset, 100 shards", "presets/imagenet-paper.yaml", {"dataset": {"shard_size": 10}})]


def dry_run(workdir: Path, configfiles: list) -> tuple[int, float, float]:
    """Jobs planned, wall seconds and CPU seconds of one `snakemake -n`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "-n",
            "--cores",
            "1",
            "--configfile",
            *map(str, configfiles),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"snakemake -n failed with {configfiles}:\n{(done.stdout + done.stderr)[-3000:]}")
    jobs = int(re.search(r"(?m)^total\s+(\d+)$", done.stdout + done.stderr).group(1))
    return jobs, wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="dry runs per grid; the fastest is shown")
    args = parser.parse_args()
    print(f"{'grid':<40} {'jobs':>6} {'wall s':>7} {'CPU s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # the preset names files relative to the working directory (its reference table)
        (workdir / "presets").symlink_to(REPO / "presets")
        for index, (name, base, overlay) in enumerate(GRIDS):
            overlay_file = workdir / f"grid{index}.yaml"
            overlay_file.write_text(yaml.safe_dump(overlay))
            runs = [dry_run(workdir, [REPO / base, overlay_file]) for _ in range(args.repeat)]
            jobs, wall, cpu = min(runs, key=lambda run: run[1])
            print(f"{name:<40} {jobs:>6} {wall:>7.2f} {cpu:>6.2f}", flush=True)


if __name__ == "__main__":
    main()

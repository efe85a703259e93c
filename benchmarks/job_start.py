"""What a workflow job costs before and around its work: the wall time of a job whose work is
small (the digits' sample stage, about 0.3 s of work), as Snakemake runs it (a fresh Python
process running the job's script), with the job server (dds.jobs: the job forked from a
warm process) and without it (the script imports torch, timm, diffusers and the stage itself).

    python benchmarks/job_start.py --jobs 10

The first served job starts the server (its own TMPDIR here, so a running workflow's server
is not used): that start is reported apart, then the mean of the others.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """
import sys, types
from snakemake.iocontainers import InputFiles, OutputFiles, Params
from dds.jobs import run_job

out = "results/digits/sample/"
files = {"train": out + "train.parquet", "eval": out + "eval.parquet", "manifest": out + "m.json"}
digits = {"name": "digits", "image_size": 16, "eval_size": 300, "shard_size": 300}
job = types.SimpleNamespace(
    input=InputFiles(fromdict={}),
    output=OutputFiles(fromdict=files),
    params=Params(fromdict={"dataset": digits, "seed": 0}),
    log=["logs/digits/sample/m.log"],
    threads=1,
)
run_job("sample", "sample", job)
"""


def timed_jobs(jobs: int, served: bool, tmpdir: Path) -> list[float]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "DDS_JOB_SERVER": "1" if served else "0", "DDS_JOB_SERVER_IDLE": "5"}
    env.pop("SLURM_JOB_ID", None)
    times = []
    for i in range(jobs):
        workdir = tmpdir / f"{'served' if served else 'own'}{i}"
        (workdir / "logs" / "digits" / "sample").mkdir(parents=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", SCRIPT], cwd=workdir, env=env, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        own = timed_jobs(args.jobs, False, Path(tmp))
        served = timed_jobs(args.jobs + 1, True, Path(tmp))
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "own_process_s": round(statistics.mean(own), 2),
                "server_start_s": round(served[0], 2),
                "served_s": round(statistics.mean(served[1:]), 2),
            }
        )
    )


if __name__ == "__main__":
    main()

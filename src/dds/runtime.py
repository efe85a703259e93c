"""Set-up shared by every workflow job: logging to the rule's log, CPU threads, and the call
of the job's stage function with the rule's named input, output and params."""

import logging
import sys

import torch


def setup_job(log_path, threads: int) -> None:
    """Send logging and stderr to `log_path` (progress of long work goes there) and give
    torch as many CPU threads as the job was granted, so parallel jobs do not oversubscribe."""
    stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (the job logs to it until it exits)
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    torch.set_num_threads(max(1, int(threads)))


def run_stage(stage, snakemake) -> None:
    """Run a Snakemake job: set it up (setup_job), then call `stage` with the rule's named
    `input`, `output` and `params` as keyword arguments. The stage's parameters carry the
    rule's key names, so a missing, extra or repeated key fails loudly instead of a
    swapped positional argument passing silently."""
    setup_job(snakemake.log[0], snakemake.threads)
    kwargs = {}
    for part in (snakemake.input, snakemake.output, snakemake.params):
        for key, value in part.items():
            if key in kwargs:
                raise TypeError(
                    f"{stage.__name__}: the rule names {key!r} twice (input, output and params keys must differ)"
                )
            kwargs[key] = value
    stage(**kwargs)

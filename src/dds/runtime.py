"""Set-up shared by every workflow job: logging to the rule's log, CPU threads."""

import logging
import sys

import torch


def setup_job(log_path, threads: int) -> None:
    """Send logging and stderr to `log_path` (progress of long work goes there) and give
    torch as many CPU threads as the job was granted, so parallel jobs do not oversubscribe."""
    stream = open(log_path, "a", buffering=1, encoding="utf-8")
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    torch.set_num_threads(max(1, int(threads)))

"""One distinct GPU for each running job on a multi-GPU machine.

Snakemake's `gpu` resource caps how many GPU jobs run at once, but it does not say which
device each one gets, so two jobs could land on the same GPU. A job leases a device by
taking an exclusive `flock` on that device's lock file in a lock directory that every job
of the machine's user shares (so two workflows run side by side do not collide either).
The kernel drops the lock when the process exits or is killed: a dead job's lease frees
itself, with nothing to clean up.

Lock files are named after the ids in CUDA_VISIBLE_DEVICES (or 0..n-1 when it is unset), so
runs that see the same physical devices in a different order still agree on which one is
taken. The lease returns the device's index among the visible ones and the caller uses
`torch.device("cuda", index)`: the environment is left alone, because counting the devices
has already initialised CUDA in this process and a later CUDA_VISIBLE_DEVICES would be
ignored.
"""

import fcntl
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "DDS_GPU_LOCK_DIR"
TIMEOUT_ENV = "DDS_GPU_LEASE_TIMEOUT"
DEFAULT_TIMEOUT = 3600.0
POLL_SECONDS = 0.5


class LeaseTimeout(RuntimeError):
    """Every visible GPU stayed leased by other jobs for the whole timeout."""


@dataclass
class Lease:
    """A held device: `index` among the visible devices, `device_id` as CUDA_VISIBLE_DEVICES
    names it. The lease lasts as long as `handle` stays open (normally: the process)."""

    index: int
    device_id: str
    path: Path
    handle: IO = field(repr=False)

    def release(self) -> None:
        self.handle.close()


def visible_ids(count: int) -> list[str]:
    """The ids of the `count` devices this process sees, as CUDA_VISIBLE_DEVICES lists them
    (0..count-1 when it is unset)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    return [part.strip() for part in listed.split(",") if part.strip()][:count]


def lock_dir() -> Path:
    """$DDS_GPU_LOCK_DIR, else one directory per user in the system's temporary directory:
    machine-wide, so every workflow of the user leases from the same pool."""
    given = os.environ.get(LOCK_DIR_ENV)
    return Path(given) if given else Path(tempfile.gettempdir()) / f"dds-gpu-leases-{os.getuid()}"


def lease_timeout() -> float:
    """Seconds to wait for a free device: $DDS_GPU_LEASE_TIMEOUT, default one hour."""
    given = os.environ.get(TIMEOUT_ENV)
    if not given:
        return DEFAULT_TIMEOUT
    try:
        return float(given)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={given!r} is not a number of seconds; unset it or give e.g. 600") from None


def _lock_path(directory: Path, device_id: str) -> Path:
    # ids can be UUIDs or MIG paths with '/': keep the file name flat
    return directory / f"gpu-{re.sub(r'[^A-Za-z0-9._-]', '_', device_id)}.lock"


def _try_lock(directory: Path, index: int, device_id: str) -> Lease | None:
    path = _lock_path(directory, device_id)
    handle = open(path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the job)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    # the holder's pid, for the message of a job that waits in vain
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return Lease(index, device_id, path, handle)


def _holders(paths: list[Path]) -> str:
    pids = [path.read_text().strip() for path in paths if path.exists()]
    return ", ".join(pid for pid in pids if pid) or "unknown"


def acquire(count: int, directory: Path | str | None = None, timeout: float | None = None) -> Lease | None:
    """Lease one of the `count` visible devices, waiting up to `timeout` seconds (default
    lease_timeout()) while all are taken. None when there is nothing to choose: no device,
    or exactly one (a scheduler such as SLURM already gave this job its own GPU)."""
    if count <= 1:
        return None
    ids = visible_ids(count)
    directory = Path(directory) if directory is not None else lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    timeout = lease_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        for index, device_id in enumerate(ids):
            lease = _try_lock(directory, index, device_id)
            if lease is not None:
                log.info("leased GPU %s (cuda:%d of %d visible) through %s", device_id, index, len(ids), lease.path)
                return lease
        if time.monotonic() >= deadline:
            paths = [_lock_path(directory, device_id) for device_id in ids]
            raise LeaseTimeout(
                f"all {len(ids)} GPUs ({', '.join(ids)}) stayed leased by other jobs (pids {_holders(paths)}) "
                f"for {timeout:g} s: run Snakemake with --resources gpu=N, N at most the number of GPUs, or set "
                f"{TIMEOUT_ENV} (seconds) to wait longer; the leases are the locks on the files in {directory}"
            )
        if not waiting:
            log.info("all %d GPUs are leased by other jobs; waiting up to %g s for one", len(ids), timeout)
            waiting = True
        time.sleep(POLL_SECONDS)

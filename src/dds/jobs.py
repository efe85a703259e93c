"""Workflow jobs forked from a warm process: each job's script hands its stage to a job server
that has imported torch, timm, diffusers, pandas and the stages once, and that forks a worker
per job, so a job no longer spends about 6 s importing them (docs/decisions.md, "Jobs forked
from a warm process").

The worker is the job: it takes the script's standard streams, working directory, environment
and umask, runs `dds.runtime.run_stage` and its exit status is the script's. When the script
dies (Snakemake cancelling the job, a killed run), the server kills its worker; when the server
dies, its workers die with it. One server serves one Python interpreter and one version of the
dds source (any edit starts a new one) for one user, and exits after IDLE_SECONDS without a job
(DDS_JOB_SERVER_IDLE).

Off (each job imports for itself, as before) with DDS_JOB_SERVER=0, inside a SLURM job (the
server would live in the first job's allocation), and off Linux. Snakemake's benchmark of a
served job times it right but measures the script's memory, not the worker's: the script
writes the worker's peak memory and CPU time beside the job's log (dds.layout.usage), and the
report reads them from there.

Imports here stay light (the standard library): a job's script imports this module and
dds.job_server only; the server is dds.job_server.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

from dds import layout
from dds.job_server import HEADER, PRELOAD, RESULT, recv_exact, run_named_stage

SWITCH_ENV = "DDS_JOB_SERVER"
START_SECONDS = 120.0


class Unavailable(OSError):
    """No job server could take the job: it runs in the script's own process instead."""


def run_job(module: str, function: str, snakemake) -> None:
    """Run stage `function` of dds.pipeline.`module` as this Snakemake job: in a worker of the job
    server when one can take it, else here; exit with the job's status."""
    usage = Path(str(snakemake.log[0]) + layout.USAGE_SUFFIX)
    usage.unlink(missing_ok=True)
    if enabled():
        try:
            code, max_rss_kib, cpu_s = _run_on_server(module, function, snakemake)
        except Unavailable as err:
            print(f"dds: the job runs in its own process ({err})", file=sys.stderr)
        else:
            if code == 0:
                _write_usage(usage, max_rss_kib, cpu_s)
            sys.exit(code)
    run_named_stage(module, function, snakemake)


def warm_up() -> None:
    """Start the job server now if jobs would use it and none listens: `make demo` runs this
    beside Snakemake's start-up, so the server's imports overlap the DAG's planning."""
    if enabled():
        with contextlib.suppress(OSError):
            _connect_or_start(socket_path()).close()


def enabled() -> bool:
    """Whether jobs go to the job server here (module docstring)."""
    return (
        os.environ.get(SWITCH_ENV, "1") != "0"
        and "SLURM_JOB_ID" not in os.environ
        and hasattr(os, "pidfd_open")
        and hasattr(socket, "send_fds")
    )


def _write_usage(path: Path, max_rss_kib: int, cpu_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps({"max_rss_mib": round(max_rss_kib / 1024, 2), "cpu_s": round(cpu_s, 2)}))
    part.replace(path)


def socket_path() -> Path:
    """The server's socket for this user, interpreter and version of the code it would preload:
    the dds source files and the preloaded packages, by path, size and modification time."""
    digest = hashlib.sha256(f"{sys.executable}\0{sys.version}".encode())
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    for name in PRELOAD:
        with contextlib.suppress(ImportError, ValueError):
            spec = find_spec(name.split(".")[0])
            if spec is not None and spec.origin:
                digest.update(f"{spec.origin}\0{os.stat(spec.origin).st_mtime_ns}\0".encode())
    return Path(tempfile.gettempdir()) / f"dds-jobs-{os.getuid()}-{digest.hexdigest()[:20]}.sock"


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def _connect_or_start(path: Path) -> socket.socket:
    """A connection to the server, started first if none listens (one starter at a time)."""
    with contextlib.suppress(OSError):
        return _connect(path)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            return _connect(path)
        path.unlink(missing_ok=True)
        log = open(path.with_suffix(".log"), "a")  # noqa: SIM115 (the server's stderr)
        server = subprocess.Popen(
            [sys.executable, "-m", "dds.job_server", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise Unavailable(f"the job server exited with status {server.returncode} (see {log.name})")
            with contextlib.suppress(OSError):
                return _connect(path)
            time.sleep(0.05)
        raise Unavailable(f"the job server did not listen on {path} within {START_SECONDS:.0f} s")


def _run_on_server(module: str, function: str, snakemake) -> tuple[int, int, float]:
    try:
        sock = _connect_or_start(socket_path())
    except OSError as err:
        raise Unavailable(f"no job server: {err}") from None
    with sock:
        umask = os.umask(0)
        os.umask(umask)
        request = pickle.dumps(
            {
                "module": module,
                "function": function,
                "snakemake": snakemake,
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "umask": umask,
                "argv": sys.argv,
            }
        )
        try:
            socket.send_fds(sock, [HEADER.pack(len(request))], [0, 1, 2])
            sock.sendall(request)
            started = recv_exact(sock, 1)
        except OSError as err:
            raise Unavailable(f"the job server did not take the job: {err}") from None
        if not started:
            raise Unavailable("the job server closed the connection before starting the job")
        result = recv_exact(sock, RESULT.size)
    if len(result) < RESULT.size:
        print("dds: the job server stopped during the job", file=sys.stderr)
        return 1, 0, 0.0
    return RESULT.unpack(result)

"""The job server of dds.jobs: it listens on a Unix socket, imports what the stages import
once, then forks a worker per job, which takes the job's script's standard streams (passed
over the socket), directory, environment and umask and runs the stage; it answers with the
worker's exit status, peak memory and CPU time, kills a worker whose script has gone, and
exits when idle.

    python -m dds.job_server SOCKET      (started by dds.jobs when no server listens)
"""

import contextlib
import ctypes
import importlib
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path

# seconds a server waits for a job before it exits (DDS_JOB_SERVER_IDLE to change)
IDLE_ENV = "DDS_JOB_SERVER_IDLE"
IDLE_SECONDS = 120.0
# imported once by the server: what the stages import, at the top of their modules or inside
# their functions (a package that is not installed, as torch in the report environment, is skipped)
PRELOAD = (
    "torch",
    "timm",
    "diffusers",
    "pandas",
    "pyarrow.parquet",
    "seaborn",
    "scipy.stats",
    "snakemake.script",
    "dds.runtime",
)
# what a result holds: the worker's exit code, peak resident memory (KiB) and CPU seconds
RESULT = struct.Struct("!iqd")
HEADER = struct.Struct("!Q")


def run_named_stage(module: str, function: str, snakemake) -> None:
    """Run stage `function` of dds.pipeline.`module` for the Snakemake job `snakemake`."""
    from dds.runtime import run_stage

    run_stage(getattr(importlib.import_module(f"dds.pipeline.{module}"), function), snakemake)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serve(path: Path) -> None:
    """The server: listen on `path`, preload, then fork a worker per request until idle."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    identity = os.stat(path).st_ino
    idle = float(os.environ.get(IDLE_ENV, IDLE_SECONDS))
    stages = [f"dds.pipeline.{p.stem}" for p in sorted((Path(__file__).parent / "pipeline").glob("*.py"))]
    for name in [*PRELOAD, *stages]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    os.chdir("/")
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    workers = {}  # connection -> (pid, pidfd)
    while True:
        events = selector.select(timeout=None if workers else idle)
        if not events:
            break
        for key, _ in events:
            if key.data == "listener":
                conn, _ = listener.accept()
                started = _start_worker(conn, listener, selector, workers)
                if started is None:
                    conn.close()
                    continue
                workers[conn] = started
                selector.register(conn, selectors.EVENT_READ, "client")
                selector.register(started[1], selectors.EVENT_READ, conn)
            elif key.data == "client":
                if key.fileobj not in workers:  # its worker's exit, earlier in this batch, closed it
                    continue
                # the script died (or misbehaved): its worker is killed; its exit reports below
                with contextlib.suppress(ProcessLookupError):
                    os.kill(workers[key.fileobj][0], signal.SIGKILL)
                selector.unregister(key.fileobj)
            else:
                conn = key.data
                pid, pidfd = workers.pop(conn)
                _, status, usage = os.wait4(pid, 0)
                selector.unregister(pidfd)
                os.close(pidfd)
                with contextlib.suppress(KeyError):
                    selector.unregister(conn)
                result = RESULT.pack(
                    os.waitstatus_to_exitcode(status), usage.ru_maxrss, usage.ru_utime + usage.ru_stime
                )
                with contextlib.suppress(OSError):
                    conn.sendall(result)
                conn.close()
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == identity:
            path.unlink()


def _start_worker(conn, listener, selector, workers):
    """Read a request (its header carries the script's stdin, stdout and stderr) and fork its
    worker; (pid, pidfd), or None for a request that could not be read."""
    conn.settimeout(10)
    try:
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        if len(header) < HEADER.size or len(fds) != 3:
            raise OSError("a request without its header and three streams")
        request = recv_exact(conn, HEADER.unpack(header)[0])
    except OSError as err:
        print(f"job server: {err}", file=sys.stderr)
        return None
    conn.settimeout(None)
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        conn.close()
        for other, (_, pidfd) in workers.items():
            other.close()
            os.close(pidfd)
        _worker(request, fds)
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):  # a script already gone: the selector sees it next
        conn.sendall(b"s")
    return pid, os.pidfd_open(pid)


def _worker(request: bytes, fds: list[int]) -> None:
    """The forked job: the script's streams, directory, environment and umask, then the stage."""
    code = 1
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        job = pickle.loads(request)
        os.chdir(job["cwd"])
        os.umask(job["umask"])
        os.environ.clear()
        os.environ.update(job["env"])
        sys.argv = job["argv"]
        run_named_stage(job["module"], job["function"], job["snakemake"])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 (the job's error, reported as a script's would be)
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))

"""dds.jobs and dds.job_server: a job forked from the warm server writes what a job in its own
process writes, fails the same way, dies with its script, and falls back to its own process when no
server can take it. Each test has its own server (its own TMPDIR), which exits 3 s after its
last job."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from conftest import REPO
from dds import job_server, jobs
from dds.config import validate

# what a Snakemake script does: build the `snakemake` object, call run_job
SCRIPT = """
import json, sys, types
from snakemake.iocontainers import InputFiles, OutputFiles, Params
from dds.jobs import run_job

module, function, inputs, outputs, params = json.loads(sys.argv[1])
log = [outputs.pop("log")]
job = types.SimpleNamespace(
    input=InputFiles(fromdict=inputs),
    output=OutputFiles(fromdict=outputs),
    params=Params(fromdict=params),
    log=log,
    threads=1,
)
run_job(module, function, job)
"""


def digits_sample(workdir: Path, eval_size=40, name="digits") -> list:
    """The sample stage's call for the digits (a few seconds of work)."""
    outputs = {
        "train": "results/digits/sample/train.parquet",
        "eval": "results/digits/sample/eval.parquet",
        "manifest": "results/digits/sample/manifest.json",
        "log": "logs/digits/sample/manifest.log",
    }
    (workdir / "logs" / "digits" / "sample").mkdir(parents=True, exist_ok=True)
    dataset = {"name": name, "image_size": 16, "eval_size": eval_size, "shard_size": eval_size}
    return ["sample", "sample", {}, outputs, {"dataset": dataset, "seed": 0}]


def run_script(workdir: Path, call: list, tmpdir: Path, served=True, **popen):
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        jobs.SWITCH_ENV: "1" if served else "0",
        job_server.IDLE_ENV: "3",
    }
    env.pop("SLURM_JOB_ID", None)
    args = [sys.executable, "-c", SCRIPT, json.dumps(call)]
    if popen:
        return subprocess.Popen(args, cwd=workdir, env=env, **popen)
    return subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def servers(tmpdir: Path) -> list:
    """The job server processes of sockets under `tmpdir`, and their workers."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "dds.job_server" in cmdline and any(arg.startswith(str(tmpdir)) for arg in cmdline):
            found.append(proc)
    return found


@pytest.fixture
def tmpdir_():
    """A TMPDIR of the test's own (its server's socket), whose server is stopped at the end;
    short, as a socket's path must be (not under tmp_path, which pytest-xdist lengthens)."""
    path = Path(tempfile.mkdtemp(prefix="dds-test-"))
    yield path
    for proc in servers(path):
        proc.kill()
    shutil.rmtree(path, ignore_errors=True)


def test_a_served_job_writes_what_a_job_in_its_own_process_writes(tmp_path, tmpdir_):
    runs = {}
    for name, served in (("served", True), ("again", True), ("own", False)):
        workdir = tmp_path / name
        result = run_script(workdir, digits_sample(workdir), tmpdir_, served=served)
        assert result.returncode == 0, result.stderr
        runs[name] = workdir / "results" / "digits" / "sample"
        if name == "again":  # one server took both served jobs
            assert len(servers(tmpdir_)) == 1
    for name in ("train.parquet", "eval.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(runs["served"] / name), pd.read_parquet(runs["own"] / name))
    manifest = json.loads((runs["own"] / "manifest.json").read_text())
    assert json.loads((runs["served"] / "manifest.json").read_text()) == manifest
    # the served job ran in a worker of the server, which recorded its memory beside the log
    usage = tmp_path / "served" / "logs" / "digits" / "sample" / "manifest.log.usage.json"
    record = json.loads(usage.read_text())
    assert record["max_rss_mib"] > 100 and record["cpu_s"] > 0  # the worker holds torch; the script does not
    assert not (tmp_path / "own" / "logs" / "digits" / "sample" / "manifest.log.usage.json").exists()
    assert "evaluation images" in usage.with_name("manifest.log").read_text()
    assert (tmp_path / "again" / "logs" / "digits" / "sample" / "manifest.log.usage.json").exists()
    # the server leaves when idle
    deadline = time.monotonic() + 30
    while servers(tmpdir_) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not servers(tmpdir_) and not list(tmpdir_.glob("*.sock"))


def test_a_failing_served_job_exits_non_zero_with_its_error_in_the_log(tmp_path, tmpdir_):
    result = run_script(tmp_path, digits_sample(tmp_path, eval_size=10**6), tmpdir_)
    assert result.returncode == 1
    log = (tmp_path / "logs" / "digits" / "sample" / "manifest.log").read_text()
    assert "Traceback" in log and "eval_size" in log
    assert not (tmp_path / "results" / "digits" / "sample" / "train.parquet").exists()
    assert not (tmp_path / "logs" / "digits" / "sample" / "manifest.log.usage.json").exists()


def test_killing_the_script_kills_its_worker(tmp_path, tmpdir_):
    """Snakemake cancelling a job, or a killed run, kills the script: its worker goes too."""
    workdir = tmp_path / "run"
    assert run_script(workdir, digits_sample(workdir), tmpdir_).returncode == 0
    data = "results/digits/sample/"
    config = validate(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "workflow/schemas/config.schema.yaml")
    spec = {**config["classifiers"]["resnet"], "epochs": 200}
    call = [
        "classifiers",
        "train_classifier",
        {"train": data + "train.parquet", "eval": data + "eval.parquet"},
        {
            "weights": "results/digits/classifiers/r.safetensors",
            "metrics": "results/digits/classifiers/r.json",
            "log": "logs/digits/classifiers/r.log",
        },
        {"name": "r", "spec": spec, "seed": 0, "device": "cpu"},
    ]
    (workdir / "logs" / "digits" / "classifiers").mkdir(parents=True)
    script = run_script(workdir, call, tmpdir_, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (workers := [p for p in servers(tmpdir_) if p.cwd() == str(workdir)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 1, "the job did not start in a worker"
        time.sleep(2)  # training
    finally:  # a long training left running would slow every test after this one
        script.send_signal(signal.SIGKILL)
        script.wait()
    workers[0].wait(timeout=10)  # psutil.TimeoutExpired if it outlived its script
    assert not (workdir / "results" / "digits" / "classifiers" / "r.safetensors").exists()


def test_warming_up_starts_the_server_the_next_job_uses(tmp_path, tmpdir_):
    """`make demo` warms the server up beside Snakemake's start-up; switched off, nothing starts."""
    warm = [sys.executable, "-c", "from dds.jobs import warm_up; warm_up()"]
    env = {**os.environ, "TMPDIR": str(tmpdir_), jobs.SWITCH_ENV: "0", job_server.IDLE_ENV: "10"}
    env.pop("SLURM_JOB_ID", None)
    subprocess.run(warm, env=env, check=True, timeout=300)
    assert servers(tmpdir_) == []
    subprocess.run(warm, env={**env, jobs.SWITCH_ENV: "1"}, check=True, timeout=300)
    (server,) = servers(tmpdir_)
    assert run_script(tmp_path, digits_sample(tmp_path), tmpdir_).returncode == 0
    assert [p.pid for p in servers(tmpdir_)] == [server.pid]  # the job went to that server
    assert (tmp_path / "logs" / "digits" / "sample" / "manifest.log.usage.json").exists()


def test_without_a_server_the_job_runs_in_its_own_process(tmp_path):
    """A TMPDIR the server cannot use (a socket's path is at most 107 bytes): the job says so
    and runs in the script's process."""
    deep = tmp_path / ("x" * 100)
    deep.mkdir()
    result = run_script(tmp_path, digits_sample(tmp_path), deep)
    assert result.returncode == 0, result.stderr
    assert "dds: the job runs in its own process" in result.stderr
    assert (tmp_path / "results" / "digits" / "sample" / "train.parquet").exists()
    assert not (tmp_path / "logs" / "digits" / "sample" / "manifest.log.usage.json").exists()


def test_off_inside_slurm_jobs_and_when_switched_off(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv(jobs.SWITCH_ENV, "1")
    assert jobs.enabled()
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not jobs.enabled()
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv(jobs.SWITCH_ENV, "0")
    assert not jobs.enabled()


def test_an_edit_to_the_dds_source_starts_a_new_server():
    """A server runs the code it preloaded: the socket is named after the source's versions."""
    before = jobs.socket_path()
    layout = Path(jobs.__file__).with_name("layout.py")
    stat = layout.stat()
    try:
        os.utime(layout, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert jobs.socket_path() != before
    finally:
        os.utime(layout, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert jobs.socket_path() == before

"""The workflow on a real SLURM cluster, through profiles/slurm.

This module starts a one-node cluster on this machine (munged, slurmctld and slurmd, with
their configuration, keys, state and logs in a temporary directory, on free ports) and stops
it at its end. It runs a very small config through the slurm profile, checks that every job
went through SLURM with the resources the config gave it, and that the tables equal those of
a local run. It needs root (the daemons) and SLURM's Debian packages, installed with
`make slurm-deps` when missing; without them it skips and says why."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, fields, planned_jobs, snakemake, workflow_copy

pytestmark = pytest.mark.workflow

# the fewest jobs that still cover every stage of the accuracy table: one classifier, one
# epsilon (plus the clean set), one sigma, one shard; one rule's resources come from the config
SMALL = {
    "seed": 5,
    "device": "cpu",
    "batch_size": 32,
    "dataset": {"name": "digits", "image_size": 16, "eval_size": 20, "shard_size": 20},
    "classifiers": {"resnet": {"model": "resnet18", "epochs": 1}},
    "denoisers": {"ddpm": {"block_out_channels": [8, 16], "attention_levels": [], "steps": 4, "batch_size": 16}},
    "attacks": {
        "pgd": {"method": "pgd_linf", "epsilons": [0.1], "steps": 1, "step_size": 2.5, "step_mode": "relative"}
    },
    "sigmas": [0.5],
    "certify": {"enabled": False},
    "blur": {"enabled": False},
    "iterations": {"enabled": False},
    "adaptive": {"enabled": False},
    "transfer": {"enabled": False},
    "attention": {"enabled": False},
    "resources": {"rules": {"train_denoiser": {"mem_mb": 1234, "runtime": 7}}},
}
TARGET = "results/digits/tables/resnet/pgd/ddpm.parquet"
CLUSTER_ARGS = (
    # this cluster keeps no accounting database: sacct would see no job
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    # the job logs show that each job ran inside SLURM
    "--slurm-keep-successful-logs",
    # each SLURM job costs two Snakemake start-ups: on 2 cores, the 4 jobs that make and
    # read the image sets (an attack per epsilon, then one classify and one denoise job over
    # both sets) run as one SLURM job
    "--groups",
    *(f"{rule}=eval" for rule in ("attack", "classify_undefended", "denoise_and_classify")),
    "--group-components",
    "eval=1",
    # a group job asks for as many CPUs as it could use at once, at most --cores: one
    "--cores",
    "1",
)
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo")

SLURM_CONF = """\
ClusterName=dds-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SchedulerParameters=sched_interval=1
# finished jobs stay visible to squeue and scontrol for the checks
MinJobAge=900
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost CPUs={cpus} RealMemory={memory}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def why_no_slurm() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start munged and slurmd for a one-node SLURM cluster"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed: pip install -r requirements.txt"
    if missing_tools():
        if shutil.which("apt-get") is None or shutil.which("make") is None:
            return f"SLURM is not installed ({', '.join(missing_tools())} missing) and apt-get or make is not there"
        subprocess.run(["make", "-s", "slurm-deps"], cwd=REPO, capture_output=True, timeout=900)
        if missing_tools():
            return f"installing SLURM with apt failed (`make slurm-deps`): {', '.join(missing_tools())} missing"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def running(pid: int) -> bool:
    """Whether the process runs: the daemons fork away from this process, so once ended
    they may stay as zombies that nobody reaps."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def stop(pid_files: list[Path]) -> None:
    """End the daemons whose pids these files hold (the ones this module started): all are
    asked at once, then waited for, and killed after 10 s."""
    pids = [int(path.read_text().split()[0]) for path in pid_files if path.exists()]
    for pid in filter(running, pids):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(map(running, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in filter(running, pids):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """The environment (SLURM_CONF) for commands that use the cluster, up while the module runs."""
    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir(mode=0o700)
    munge = root / "munge"
    key = munge / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(root=root, ctld_port=free_port(), slurmd_port=free_port(), cpus=os.cpu_count(), memory=memory)
    )
    # Inside a job, snakemake's jobstep plugin runs the rule under `srun` with the SLURM_*
    # variables dropped, SLURM_CONF too, so srun would look for /etc/slurm/slurm.conf: a
    # wrapper first on PATH points it at this cluster's configuration instead.
    (root / "bin").mkdir()
    wrapper = root / "bin" / "srun"
    wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    daemons = [
        # munged refuses to run as root without --force; it serves only this cluster's socket
        [
            "munged",
            "--force",
            f"--key-file={key}",
            f"--socket={munge}/munge.sock",
            f"--pid-file={munge}/munged.pid",
            f"--log-file={munge}/munged.log",
            f"--seed-file={munge}/munged.seed",
        ],
        ["slurmctld", "-f", str(conf)],
        # the node's name in slurm.conf, not this machine's host name
        ["slurmd", "-f", str(conf), "-N", "localhost"],
    ]
    try:
        for command in daemons:
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
            if state.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            logs = "".join(p.read_text()[-2000:] for p in (root / "slurmctld.log", root / "slurmd.log") if p.exists())
            pytest.fail(f"the SLURM node did not come up (sinfo: {state!r}):\n{logs}")
        yield env
    finally:
        stop([root / "slurmd.pid", root / "slurmctld.pid", munge / "munged.pid"])


def job_field(env: dict, job_id: str, name: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
    return re.search(rf"\b{name}=(\S*)", shown).group(1)


def test_the_workflow_runs_through_slurm_and_equals_a_local_run(slurm_env, tmp_path):
    local = workflow_copy(tmp_path / "local", SMALL)
    on_slurm = workflow_copy(tmp_path / "slurm", SMALL)
    with ThreadPoolExecutor(1) as pool:
        # the local run computes while the SLURM run waits between its status checks
        local_run = pool.submit(snakemake, local, TARGET)
        result = snakemake(
            on_slurm, TARGET, "--profile", str(REPO / "profiles" / "slurm"), *CLUSTER_ARGS, env=slurm_env
        )
        assert local_run.result().returncode == 0, local_run.result().stderr[-4000:]
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]

    # SLURM ran every job: four single ones and one group job
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log))
    slurm_logs = on_slurm / ".snakemake" / "slurm_logs"
    by_rule = {
        Path(path).relative_to(slurm_logs).parts[0].removeprefix("rule_"): job_id for job_id, path in submitted.items()
    }
    (group,) = set(by_rule) - {"sample", "train_classifier", "train_denoiser", "accuracy_table"}
    assert group.startswith("group_eval") and len(submitted) == 5
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i %T"], env=slurm_env, capture_output=True, text=True
    ).stdout
    states = dict(line.split() for line in listed.splitlines() if line.strip())
    assert {job_id: states.get(job_id) for job_id in submitted} == dict.fromkeys(submitted, "COMPLETED")
    # inside its SLURM job, each job runs as a `localrule` (in the job's log, kept for the test)
    inside = [
        line
        for path in submitted.values()
        for line in Path(path).read_text().splitlines()
        if line.startswith("localrule ")
    ]
    assert len(inside) == int(re.search(r"(?m)^total\s+(\d+)$", log).group(1))

    # what each rule asked for reached SLURM: the config's overrides, the rules' defaults,
    # and no GPU anywhere (device cpu)
    assert job_field(slurm_env, by_rule["train_denoiser"], "TimeLimit") == "00:07:00"
    assert job_field(slurm_env, by_rule["train_denoiser"], "MinMemoryNode") == "1234M"
    assert job_field(slurm_env, by_rule["train_classifier"], "TimeLimit") == "04:00:00"
    assert all("gpu" not in job_field(slurm_env, job_id, "TRES") for job_id in submitted)

    tables = sorted((local / "results" / "digits" / "tables").rglob("*.parquet"))
    assert len(tables) == 1
    for table in tables:
        pd.testing.assert_frame_equal(
            pd.read_parquet(table), pd.read_parquet(on_slurm / table.relative_to(local)), check_exact=True
        )


def test_resources_come_from_the_config(tmp_path):
    """Without a cluster: the resources each job declares (what the slurm profile asks for)."""
    config = {
        **SMALL,
        "device": "auto",
        "resources": {
            "partition": "cpus",
            "gpu_partition": "gpus",
            "rules": {"train_denoiser": {"mem_mb": 1234, "cpus": 2}},
        },
    }
    result = snakemake(workflow_copy(tmp_path / "auto", config), "-n", TARGET)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = {job["rule"]: job for job in planned_jobs(result.stdout + result.stderr)}
    asked = {rule: fields(job["resources"]) for rule, job in jobs.items()}
    # a torch job holds one GPU in the GPU partition; the others never ask for one
    assert asked["train_denoiser"]["gpu"] == "1" and asked["train_denoiser"]["slurm_partition"] == "gpus"
    assert asked["train_denoiser"]["mem_mb"] == "1234" and jobs["train_denoiser"]["threads"] == "2"
    assert asked["train_denoiser"]["runtime"] == "720"  # the rule's default
    assert asked["attack"]["gpu"] == "1" and asked["attack"]["runtime"] == "60"
    for rule in ("sample", "accuracy_table"):
        assert "gpu" not in asked[rule] and asked[rule]["slurm_partition"] == "cpus"
    # on the CPU no job holds a GPU
    result = snakemake(workflow_copy(tmp_path / "cpu", {**config, "device": "cpu"}), "-n", TARGET)
    assert not any("gpu" in fields(job["resources"]) for job in planned_jobs(result.stdout + result.stderr))
    # a misspelt rule name stops the run, naming the key and the rules there are
    config["resources"]["rules"] = {"train_denoisr": {"runtime": 5}}
    result = snakemake(workflow_copy(tmp_path / "typo", config), "-n", TARGET)
    assert result.returncode != 0
    assert "config key 'resources.rules': no rule named train_denoisr; the rules are " in result.stdout + result.stderr

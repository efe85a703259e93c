"""The GPU check (benchmarks/gpu_check.sh): its `--cpu` smoke test end to end, whose rehearsal
step is the suite's CIFAR-10 rehearsal (the preset's whole workflow on stand-ins in the
official formats, dds.rehearsal), and the parts it relies on: the time limit of a step and
the choice of the wheels to install."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(gpu_check)


def test_a_step_past_its_limit_is_stopped_with_what_it_started(tmp_path):
    child = tmp_path / "child.pid"
    script = (
        "import subprocess, time; "
        f"p = subprocess.Popen(['sleep', '60']); open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    code, seconds = gpu_check.supervise([sys.executable, "-c", script], 2, tmp_path / "log")
    assert code is None and 2 <= seconds < 20
    time.sleep(0.2)
    pid = int(child.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_step_within_its_limit_keeps_its_exit_code(tmp_path):
    code, _ = gpu_check.supervise([sys.executable, "-c", "print('out'); raise SystemExit(3)"], 30, tmp_path / "log")
    assert code == 3 and (tmp_path / "log").read_text() == "out\n"


def test_the_cuda_only_tests_are_those_that_skip_naming_cuda_or_a_gpu(tmp_path):
    tests = tmp_path / "test_mixed.py"
    tests.write_text(
        "import pytest\n"
        "needs_cuda = pytest.mark.skipif(True, reason='needs CUDA')\n"
        "@needs_cuda\ndef test_cuda(): pass\n"
        "@pytest.mark.skipif(False, reason='runs on one GPU')\ndef test_gpu(): assert False\n"
        "@pytest.mark.skipif(True, reason='needs pdflatex')\ndef test_latex(): pass\n"
        "def test_plain(): pass\n"
    )
    plugin = gpu_check.CudaOnly()
    pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tests)], plugins=[plugin])
    names = {nodeid.split("::")[-1]: outcome for nodeid, outcome in plugin.outcomes.items()}
    assert names == {"test_cuda": "skipped", "test_gpu": "failed"} and plugin.skip_reasons == {"Skipped: needs CUDA"}


def test_only_the_wheels_of_distributions_not_installed_are_installed(tmp_path):
    version = metadata.version("pytest")
    for name in (f"pytest-{version}-py3-none-any.whl", "no_such_distribution_dds-1.0-py3-none-any.whl"):
        (tmp_path / name).touch()
    assert gpu_check.missing_wheels(tmp_path) == [tmp_path / "no_such_distribution_dds-1.0-py3-none-any.whl"]
    assert gpu_check.missing_wheels(tmp_path / "absent") == []


def test_the_wheels_follow_the_requirements_and_stop_at_the_gpu_machines_packages():
    needs = gpu_check.closure(["jsonschema"])
    assert needs["jsonschema"] == metadata.version("jsonschema") and "referencing" in needs
    assert gpu_check.closure(["jsonschema"], stop=("jsonschema",)) == {"jsonschema": metadata.version("jsonschema")}
    assert gpu_check.closure(["no-such-distribution-dds"]) == {"no-such-distribution-dds": None}
    # the markers are read for the Python the wheels are for, not for this one
    assert "tomli" in gpu_check.closure(["pytest"], {"python_version": "3.10", "python_full_version": "3.10.0"})
    assert "tomli" not in gpu_check.closure(["pytest"])


@pytest.mark.workflow
def test_gpu_check_on_the_cpu_and_the_cifar10_rehearsal(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out), "--cpu", "--workdir", str(tmp_path / "work")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert "installing" not in done.stdout  # the venv has everything: nothing is installed
    summary = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == list(gpu_check.STEPS)
    for step in steps.values():
        assert step["status"] == "passed" or (step["status"] == "skipped" and step["reason"]), step
    assert summary["passed"] and done.returncode == 0, done.stdout[-3000:]
    markdown = (out / "gpu_check.md").read_text()
    assert all(f"| {name} | {step['status']}" in markdown for name, step in steps.items())

    # the rehearsal: the CIFAR-10 preset's workflow ran every planned job to every planned output
    assert steps["rehearsal"]["status"] == "passed"
    rehearsal = json.loads((out / "rehearsal.json").read_text())
    cifar10 = rehearsal["presets"]["cifar10-paper"]
    assert rehearsal["passed"] and cifar10["passed"]
    assert cifar10["jobs_run"] == cifar10["jobs_planned"] > 0 and cifar10["missing_outputs"] == []

    throughput = steps["throughput"]["numbers"]["setups"]
    assert set(throughput) == {"cifar10", "imagenet"}
    for setup in throughput.values():
        assert [r["stage"] for r in setup["rows"]] == ["denoise", "classify"]
        assert all(r[f"{path}_img_s"] > 0 for r in setup["rows"] for path in ("reference", "fp32", "bf16"))
        assert 0.5 <= setup["agreement"]["predictions_agree"] <= 1
    certify = steps["certify"]["numbers"]
    assert certify["fp32"]["identical_counts"] and certify["bf16"]["fused_draws_s"] > 0

"""The GPU check: the measurements that need a GPU, one command on one GPU sized for under 8
minutes, on a machine that has PyTorch but cannot download anything (docs/benchmarks.md,
"GPU check").

    make gpu-wheels                           # here: wheels of what such a machine lacks
    bash benchmarks/gpu_check.sh out/         # there: installs what is missing, runs the steps
    bash benchmarks/gpu_check.sh out/ --cpu   # anywhere: the same steps at tiny sizes on the CPU

Subcommands (gpu_check.sh and `make gpu-wheels` call them): `wheels DIR` downloads the
wheels; `missing DIR` lists the wheels of DIR whose distributions are not installed; `run
OUTDIR` runs the steps, each in its own process under a time limit (a stuck step fails and
the next one runs), and writes OUTDIR/gpu_check.json and OUTDIR/gpu_check.md; `step` runs
one step (what `run` starts). The steps:

- cuda_tests: the tests of tests/ that skip without CUDA (a skipif on torch.cuda.is_available()
  whose reason names CUDA or a GPU);
- gpu_lease: tests/test_gpu_lease.py, then jobs in separate processes resolving device
  `cuda` as a workflow job does (dds.device): each computes on its leased GPU;
- throughput: denoising and classification at the paper's sizes (benchmarks/throughput.py's
  setups) in dds's path in fp32 and in bf16 against the reference-style loop: images/s,
  speed-ups, FLOP/s against the GPU's bf16 peak, agreement of the fp32 and bf16 predictions;
- certify: fused certification sampling against the loop (benchmarks/certify_throughput.py),
  in fp32 and in bf16;
- rehearsal: the CIFAR-10 preset's whole workflow on stand-ins (python -m dds.rehearsal).
"""

import argparse
import contextlib
import copy
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
TRAVEL_LIMIT_MIB = 64  # the working tree with its wheels, as it travels to the GPU machine

# The GPU machine's Python and what it has installed (with whatever these need): no wheels for them.
TARGET_PYTHON = "3.12"
TARGET_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
GPU_PROVIDED = ("torch", "torchvision", "timm", "numpy", "scipy", "pandas", "pyarrow", "statsmodels")
GPU_PROVIDED += ("matplotlib", "seaborn", "safetensors", "jinja2", "pyyaml", "tqdm", "pytest")
# and what every version of those needs: Pillow (torchvision, matplotlib), huggingface-hub (timm)
GPU_PROVIDED += ("pillow", "huggingface-hub")
# requirements.txt entries the check does not need, with why
LEFT_OUT = {
    "ruff": "lint only",
    "snakefmt": "lint only",
    "selenium": "the report's browser test only",
    "grad-cam": "the attention maps only (off in the CIFAR-10 preset); it imports OpenCV, whose "
    "wheel alone (61 MB) is over the 64 MiB the working tree may travel with",
}

# step -> its time limit in seconds on a GPU and with --cpu; the rehearsal gets what is left
# of the budget, so the whole run stays within it even when a step before it is slow
LIMITS = {"cuda_tests": (60, 300), "gpu_lease": (60, 300), "throughput": (150, 600), "certify": (90, 300)}
STEPS = (*LIMITS, "rehearsal")
BUDGET = {"gpu": 450, "cpu": 2400}  # seconds for all the steps; pip's install comes before, ~20 s
REHEARSAL_MIN = 60

# (images, noise draws per image, dds's batch) per setup of benchmarks/throughput.py
THROUGHPUT_SIZES = {
    "gpu": {"cifar10": (32, 64, 512), "imagenet": (8, 16, 32)},
    "cpu": {"cifar10": (1, 2, 2), "imagenet": (1, 2, 2)},
}
CERTIFY_ARGS = {
    "gpu": ["--cifar10", "--images", "4", "--draws", "1024", "--batch-size", "512"],
    "cpu": ["--random-models", "--images", "2", "--draws", "32", "--batch-size", "16"],
}
MATMUL_SIZE, MATMUL_REPEATS = 8192, 50
CUDA_REASON = re.compile(r"cuda|gpu", re.IGNORECASE)


# --- wheels (here) and what is missing (there) ---


def requirements() -> list[str]:
    """The canonical names of the distributions requirements.txt pins."""
    lines = (line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines())
    return [canonical(re.split(r"[=<>!~;\[ ]", line)[0]) for line in lines if line]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(name: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def closure(roots, environment: dict | None = None, stop=()) -> dict[str, str | None]:
    """Every distribution `roots` need, themselves included, with its installed version (None:
    not installed), read from the installed metadata; markers evaluated for `environment`
    (overrides of the running interpreter's, e.g. another Python version). What the
    distributions in `stop` need is not followed."""
    from packaging.requirements import Requirement

    found, seen, todo = {}, set(), [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        found[name] = installed(name)
        if found[name] is None or name in stop:
            continue
        for line in metadata.requires(name) or []:
            dep = Requirement(line)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({**(environment or {}), "extra": e}) for e in extras):
                todo.append(dep)
    return found


def wheel_name(path: Path) -> tuple[str, str]:
    """(canonical distribution name, version) of a wheel file."""
    name, version = path.name.split("-")[:2]
    return canonical(name), version


def prepare_wheels(folder: Path) -> None:
    """The wheels (Python 3.12, manylinux x86_64) of the requirements the GPU machine lacks
    and of what they need there, at the versions installed here (the venv holds the pins of
    requirements.txt); sdist-only ones are built here and must come out pure Python."""
    target = {"python_version": TARGET_PYTHON, "python_full_version": f"{TARGET_PYTHON}.0"}
    # what the GPU machine's own packages need is there with them; the small packages the
    # others need are all brought, even those that the machine's packages may need too:
    # its versions of those are not known here, and only the missing wheels are installed
    roots = [n for n in requirements() if n not in LEFT_OUT and n not in GPU_PROVIDED]
    needed = {n: v for n, v in closure(roots, target, stop=GPU_PROVIDED).items() if n not in GPU_PROVIDED}
    absent = sorted(n for n, v in needed.items() if v is None)
    if absent:
        raise SystemExit(f"not installed here: {', '.join(absent)}; install the venv first (make check)")
    folder.mkdir(parents=True, exist_ok=True)
    binary = ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp"]
    binary += [f"--platform={p}" for p in TARGET_PLATFORMS]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    wanted, sdist_only = sorted(f"{n}=={v}" for n, v in needed.items()), []
    # one download for all (files already in the folder are reused); a distribution without
    # a matching wheel fails it, and is built below instead
    while True:
        done = subprocess.run(
            [*pip, "download", "--quiet", "--no-deps", *binary, "-d", str(folder), *wanted],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            break
        failed = re.search(r"No matching distribution found for (\S+)", done.stderr)
        if not failed or failed.group(1) not in wanted:
            raise SystemExit(f"pip download failed:\n{done.stderr[-3000:]}")
        wanted.remove(failed.group(1))
        sdist_only.append(failed.group(1))
    for pin in sdist_only:
        subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(folder), pin], check=True)
    stale = [w for w in folder.glob("*.whl") if needed.get(wheel_name(w)[0]) != wheel_name(w)[1]]
    for wheel in stale:
        wheel.unlink()
    wheels = sorted(folder.glob("*.whl"))
    impure = [w.name for w in wheels if wheel_name(w)[0] in map(canonical, sdist_only) and "-none-any" not in w.name]
    if impure:
        raise SystemExit(f"built here but not pure Python, so useless on Python {TARGET_PYTHON}: {impure}")
    if len(wheels) != len(needed):
        raise SystemExit(f"{len(wheels)} wheels in {folder} for {len(needed)} distributions: {sorted(needed)}")
    size = sum(w.stat().st_size for w in wheels)
    tree = travelling_tree_bytes(folder)
    print(f"{folder}: {len(wheels)} wheels, {size / 2**20:.1f} MiB (left out: {', '.join(LEFT_OUT)})")
    print(f"the working tree with them: {tree / 2**20:.1f} MiB (limit {TRAVEL_LIMIT_MIB} MiB)")
    if tree > TRAVEL_LIMIT_MIB * 2**20:
        raise SystemExit(f"over the {TRAVEL_LIMIT_MIB} MiB the working tree may travel with to the GPU machine")


def travelling_tree_bytes(folder: Path) -> int:
    """Bytes of what travels: the files git tracks or would track (not ignored) and `folder`."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    files = [REPO / p for p in listed if p and not (REPO / p).resolve().is_relative_to(folder.resolve())]
    files += list(folder.rglob("*"))
    return sum(f.stat().st_size for f in files if f.is_file())


def missing_wheels(folder: Path) -> list[Path]:
    """The wheels of `folder` whose distributions are not installed (no folder: none)."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    return [w for w in wheels if installed(wheel_name(w)[0]) is None]


def check_installed() -> None:
    """Stop before any step when a requirement the check needs, or something those it
    brings wheels for need, is not installed."""
    roots = [n for n in requirements() if n not in LEFT_OUT]
    absent = {n for n in roots if installed(n) is None}
    brought = closure((n for n in roots if n not in GPU_PROVIDED), stop=GPU_PROVIDED)
    absent |= {n for n, v in brought.items() if v is None}
    if absent:
        raise SystemExit(
            f"not installed: {', '.join(sorted(absent))}. Run `make gpu-wheels` on a machine with the venv and "
            "network, and bring gpu-wheels/ along with the working tree (docs/benchmarks.md, GPU check)"
        )


# --- the run: each step in its own process under a time limit ---


def supervise(command: list, limit: float, log: Path, env: dict | None = None) -> tuple[int | None, float]:
    """Run `command` (output to `log`) for at most `limit` seconds: (exit code, or None when it
    ran out of time and was killed with every process it started; seconds)."""
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
        # the step's own children (pytest's, Snakemake's jobs) go with it, finished or not
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return code, time.monotonic() - start


def run_step(name: str, outdir: Path, mode: str, workdir: Path, limit: float, env: dict) -> dict:
    log = outdir / "logs" / f"{name}.log"
    result_file = outdir / "steps" / f"{name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, __file__, "step", name, str(outdir), "--mode", mode, "--workdir", str(workdir)]
    print(f"[{name}] started, time limit {limit:.0f} s, log {log}", flush=True)
    code, seconds = supervise(command, limit, log, env)
    if code is None:
        result = {"status": "failed", "reason": f"timeout: stopped after its limit of {limit:.0f} s"}
    elif result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        result = {"status": "failed", "reason": f"exit code {code}, no result: {tail[0]}"}
    if result["status"] == "failed":
        result["reason"] += f" (its log: {log.relative_to(outdir)})"
    result = {"name": name, **result, "passed": result["status"] == "passed", "seconds": round(seconds, 1)}
    print(f"[{name}] {result['status']} in {seconds:.1f} s" + (f": {result['reason']}" if "reason" in result else ""))
    return result


def run(outdir: Path, mode: str, only: list, workdir: Path | None, budget: float) -> int:
    check_installed()
    for sub in ("logs", "steps"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if mode == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a smoke test on the CPU even where a GPU is
    probe = subprocess.run([sys.executable, __file__, "env"], capture_output=True, check=True, env=env)
    machine = json.loads(probe.stdout)
    if mode == "gpu" and not machine["cuda"]:
        raise SystemExit("no CUDA device visible here; run with --cpu for the smoke test on the CPU")
    keep = workdir is not None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="dds-gpu-check-"))
    summary = {"mode": mode, "environment": machine, "budget_s": budget, "steps": []}
    start = time.monotonic()
    for name in STEPS:
        if only and name not in only:
            summary["steps"].append({"name": name, "status": "skipped", "passed": False, "seconds": 0.0})
            summary["steps"][-1]["reason"] = f"not selected (--only {' '.join(only)})"
            continue
        left = budget - (time.monotonic() - start)
        limit = LIMITS[name][mode == "cpu"] if name in LIMITS else max(REHEARSAL_MIN, left)
        summary["steps"].append(run_step(name, outdir, mode, workdir, limit, env))
        write_summary(outdir, summary, time.monotonic() - start)  # so far: kept if the run is killed
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = write_summary(outdir, summary, time.monotonic() - start)
    print(f"{'passed' if summary['passed'] else 'FAILED'}: {outdir / 'gpu_check.md'}, {outdir / 'gpu_check.json'}")
    return 0 if summary["passed"] else 1


def write_summary(outdir: Path, summary: dict, seconds: float) -> dict:
    summary = {
        **summary,
        "seconds": round(seconds, 1),
        "passed": all(s["status"] in ("passed", "skipped") for s in summary["steps"]),
    }
    (outdir / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (outdir / "gpu_check.md").write_text(markdown(summary))
    return summary


def environment() -> dict:
    import platform

    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu_cores": os.cpu_count(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --- the steps (each in its own process: `gpu_check.py step NAME OUTDIR`) ---


class CudaOnly:
    """pytest plugin: keeps the tests with a skipif whose reason names CUDA or a GPU and
    records each one's outcome."""

    def __init__(self):
        self.outcomes, self.skip_reasons = {}, set()

    def pytest_collection_modifyitems(self, config, items):
        def cuda_only(item):
            return any(CUDA_REASON.search(str(m.kwargs.get("reason", ""))) for m in item.iter_markers("skipif"))

        config.hook.pytest_deselected(items=[i for i in items if not cuda_only(i)])
        items[:] = [i for i in items if cuda_only(i)]

    def pytest_collectreport(self, report):
        if report.failed:  # a test file that does not import
            self.outcomes[report.nodeid] = "failed"

    def pytest_runtest_logreport(self, report):
        if report.skipped:
            self.skip_reasons.add(report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr))
        if report.failed or report.skipped or report.when == "call":
            self.outcomes.setdefault(report.nodeid, report.outcome)


def cuda_tests(ctx) -> dict:
    import pytest

    # only the files that mention CUDA or a GPU are collected: the others need not import here
    files = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "tests").glob("test_*.py"))
        if CUDA_REASON.search(p.read_text())
    ]
    plugin = CudaOnly()
    if files:
        pytest.main(["-q", "-p", "no:cacheprovider", *files], plugins=[plugin])
    counts = {o: list(plugin.outcomes.values()).count(o) for o in ("passed", "failed", "skipped")}
    numbers = {"files": len(files), "tests": len(plugin.outcomes), **counts}
    if counts["failed"]:
        return {"status": "failed", "reason": f"{counts['failed']} CUDA-only tests failed", "numbers": numbers}
    if not plugin.outcomes:
        reason = "no CUDA-only test in tests/ (one with a skipif whose reason names CUDA or a GPU)"
        return {"status": "skipped", "reason": reason, "numbers": numbers}
    if counts["skipped"] == len(plugin.outcomes):
        reason = f"all {counts['skipped']} CUDA-only tests skipped: {'; '.join(sorted(plugin.skip_reasons))}"
        return {"status": "skipped", "reason": reason, "numbers": numbers}
    return {"status": "passed", "numbers": numbers}


def _lease_job(queue, release):
    """A workflow job's view of its device: resolve `cuda` (a lease when several GPUs are
    visible), compute there, report, and hold the lease until released."""
    import torch

    from dds.device import job_gpu, resolve_device

    device = resolve_device("cuda")
    x = torch.randn(1024, 1024, device=device)
    lease = job_gpu()
    queue.put(
        {
            "lease": lease.device_id if lease else None,
            "index": device.index,
            "current": torch.cuda.current_device(),
            "finite": bool(torch.isfinite(x @ x).all()),
            "allocated": torch.cuda.memory_allocated(torch.cuda.current_device()),
        }
    )
    release.wait(120)


def gpu_lease(ctx) -> dict:
    # the lock semantics with real processes first, before this process touches CUDA (they fork)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu_lease.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    print(tests.stdout, tests.stderr)
    lines = tests.stdout.strip().splitlines() or ["no output"]
    numbers = {"lease_tests": lines[-1].strip("= ")}
    if tests.returncode:
        return {"status": "failed", "reason": f"tests/test_gpu_lease.py: {lines[-1]}", "numbers": numbers}
    if ctx.device.type != "cuda":
        return {"status": "passed", "reason": "the part on a real device needs CUDA", "numbers": numbers}
    import multiprocessing

    import torch

    from dds import gpu_lease

    count = torch.cuda.device_count()
    spawn = multiprocessing.get_context("spawn")  # CUDA does not survive a fork
    reported, release = spawn.Queue(), spawn.Event()
    with tempfile.TemporaryDirectory() as locks:
        os.environ[gpu_lease.LOCK_DIR_ENV] = locks
        jobs = [spawn.Process(target=_lease_job, args=(reported, release)) for _ in range(max(2, count))]
        for job in jobs:
            job.start()
        try:
            reports = [reported.get(timeout=30) for _ in jobs]
        except queue.Empty:
            codes = [job.exitcode for job in jobs]
            return {"status": "failed", "reason": f"a job reported nothing in 30 s (exit codes {codes})"}
        finally:
            release.set()
            for job in jobs:
                job.join(30)
    numbers.update(gpus=count, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), jobs=reports)
    problems = [r for r in reports if not r["finite"] or r["allocated"] <= 0]
    if count > 1:
        # every job its own device, and its work there
        problems += [r for r in reports if r["index"] != r["current"]]
        if sorted(r["index"] for r in reports) != list(range(count)):
            problems.append("the jobs did not get distinct GPUs")
    elif any(r["lease"] is not None or r["current"] != 0 for r in reports):
        problems.append("one visible GPU: the jobs should share cuda:0 without a lease")
    if problems:
        return {"status": "failed", "reason": f"lease on the real device: {problems}", "numbers": numbers}
    return {"status": "passed", "numbers": numbers}


def throughput_setups(mode: str) -> dict:
    """benchmarks/throughput.py's setups; on the CPU the CIFAR-10 one at full size and the
    ImageNet one with its UNet at 1/8 width for 64x64 images and a small CoAtNet (the same
    code paths)."""
    import throughput
    from dds.diffusion.checkpoints import checkpoint_spec

    if mode == "gpu":
        return throughput.SETUPS
    imagenet = checkpoint_spec(throughput.SETUPS["imagenet"]["checkpoint"])
    narrow = replace(imagenet, unet=replace(imagenet.unet, model_channels=32, num_head_channels=32, image_size=64))
    small = {"checkpoint": narrow, "classifier": "coatnet_rmlp_nano_rw_224", "resize": {"size": 224, "mode": "bicubic"}}
    return {"cifar10": throughput.SETUPS["cifar10"], "imagenet": {**throughput.SETUPS["imagenet"], **small}}


def matmul_tflops(device) -> float:
    """bf16 TFLOP/s of large square matrix products: what this GPU reaches at best."""
    import torch

    from common import timed

    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device, dtype=torch.bfloat16)
    out = torch.empty_like(a)

    def products(repeats):
        for _ in range(repeats):
            torch.mm(a, a, out=out)

    products(3)  # warm-up: cuBLAS's choice of kernel
    seconds, _ = timed(partial(products, MATMUL_REPEATS), device)
    return 2 * MATMUL_SIZE**3 * MATMUL_REPEATS / seconds / 1e12


def measure_setup(setup: dict, sizes: tuple, device) -> tuple[list, dict]:
    """Rows per stage (images/s of the reference loop, dds in fp32, dds in bf16) and the
    agreement of the fp32 and bf16 outputs (denoised images, then their classes)."""
    import torch

    import throughput
    from common import timed
    from dds.diffusion.checkpoints import checkpoint_spec
    from dds.diffusion.one_shot import OneShotDenoiser, denoise_images
    from dds.evaluation import classify
    from dds.evaluation.inference import resolve

    images, draws, batch = sizes
    size = checkpoint_spec(setup["checkpoint"]).unet.image_size
    torch.manual_seed(0)
    x = torch.rand(images, 3, size, size)
    eps, alphas_cumprod, model = throughput.build_models(setup, device)
    flops = throughput.flops_per_image(setup)
    data, one = throughput.draws_set(x, draws), throughput.draws_set(x[:1], 1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, outputs = {}, {}
    reference = OneShotDenoiser(eps, alphas_cumprod, throughput.SIGMA)
    for stage, loop, net in (
        ("denoise", throughput.reference_denoise, reference),
        ("classify", throughput.reference_classify, model),
    ):
        loop(net, x[:1], 1, device)  # warm-up: allocator, cuDNN's choices
        seconds[stage, "reference"] = timed(partial(loop, net, x, draws, device), device)[0]
    for precision in ("fp32", "bf16"):
        # each precision on its own copies: preparing changes a model in place (its layout)
        settings = resolve({"precision": precision}, device)
        denoiser = OneShotDenoiser(settings.prepare(copy.deepcopy(eps)), alphas_cumprod, throughput.SIGMA)
        classifier = settings.prepare(copy.deepcopy(model))
        classify.logits(classifier, denoise_images(denoiser, one, 0, batch, device), batch, device)  # warm-up
        seconds["denoise", precision], denoised = timed(
            partial(denoise_images, denoiser, data, 0, batch, device), device
        )
        seconds["classify", precision], logits = timed(
            partial(classify.logits, classifier, denoised, batch, device), device
        )
        if not (torch.isfinite(denoised).all() and torch.isfinite(logits).all()):
            raise RuntimeError(f"{precision}: non-finite outputs")
        outputs[precision] = denoised, logits.argmax(1)
    (d32, p32), (d16, p16) = outputs["fp32"], outputs["bf16"]
    agreement = {
        "predictions_agree": round(float((p32 == p16).float().mean()), 4),
        "denoised_max_abs_diff": round(float((d32 - d16).abs().max()), 4),
        "denoised_mean_abs_diff": round(float((d32 - d16).abs().mean()), 5),
    }
    if device.type == "cuda":
        agreement["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
    rows = []
    for stage in ("denoise", "classify"):
        rate = {path: images * draws / seconds[stage, path] for path in ("reference", "fp32", "bf16")}
        rows.append(
            {
                "stage": stage,
                "images": images,
                "draws": draws,
                "batch": batch,
                "gflop_per_image": round(flops[stage] / 1e9, 2),
                **{f"{path}_img_s": round(r, 2) for path, r in rate.items()},
                "fp32_speedup": round(rate["fp32"] / rate["reference"], 2),
                "bf16_speedup": round(rate["bf16"] / rate["reference"], 2),
                "bf16_over_fp32": round(rate["bf16"] / rate["fp32"], 2),
                "bf16_tflops": round(rate["bf16"] * flops[stage] / 1e12, 3),
            }
        )
    return rows, agreement


def throughput_step(ctx) -> dict:
    import throughput

    gpu, peak = throughput.peak_tflops(ctx.device)
    numbers = {"device": gpu, "peak_tflops_spec": peak, "setups": {}}
    if ctx.device.type == "cuda":
        numbers["matmul_tflops"] = round(matmul_tflops(ctx.device), 1)
    for name, setup in throughput_setups(ctx.mode).items():
        rows, agreement = measure_setup(setup, THROUGHPUT_SIZES[ctx.mode][name], ctx.device)
        for row in rows:
            if peak:
                row["bf16_fraction_of_peak"] = round(row["bf16_tflops"] / peak, 4)
            if "matmul_tflops" in numbers:
                row["bf16_fraction_of_matmul"] = round(row["bf16_tflops"] / numbers["matmul_tflops"], 4)
        numbers["setups"][name] = {"rows": rows, "agreement": agreement}
        print(name, json.dumps(numbers["setups"][name]), flush=True)
    return {"status": "passed", "numbers": numbers}


CERTIFY_LINES = {
    "straightforward_draws_s": r"straightforward:\s+([\d.]+) draws/s",
    "fused_draws_s": r"fused:\s+([\d.]+) draws/s",
    "speedup": r"ratio fused / straightforward: ([\d.]+)x",
    "identical_counts": r"identical counts: (True|False)",
}


def certify_step(ctx) -> dict:
    numbers = {"args": " ".join(CERTIFY_ARGS[ctx.mode])}
    for precision in ("fp32", "bf16"):
        command = [sys.executable, str(BENCHMARKS / "certify_throughput.py"), *CERTIFY_ARGS[ctx.mode]]
        done = subprocess.run([*command, "--precision", precision], cwd=REPO, capture_output=True, text=True)
        print(done.stdout, done.stderr)
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"status": "failed", "reason": f"certify_throughput.py --precision {precision}: {tail}"}
        found = {key: re.search(pattern, done.stdout) for key, pattern in CERTIFY_LINES.items()}
        if not all(found.values()):
            return {
                "status": "failed",
                "reason": f"certify_throughput.py's output lacks {sorted(k for k, m in found.items() if not m)}",
            }
        result = {k: float(m.group(1)) if k != "identical_counts" else m.group(1) == "True" for k, m in found.items()}
        moved = re.search(r"\((\d+) of (\d+) predictions moved\)", done.stdout)
        result["predictions_moved"] = f"{moved.group(1)} of {moved.group(2)}" if moved else "0"
        numbers[precision] = result
    return {"status": "passed", "numbers": numbers}


def rehearsal_step(ctx) -> dict:
    summary_file = ctx.outdir / "rehearsal.json"
    summary_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "dds.rehearsal", "--preset", "cifar10-paper", "--size", "smallest"]
    command += ["--device", ctx.device.type, "--summary", str(summary_file)]
    command += ["--workdir", str(ctx.workdir / "rehearsal")]
    if ctx.mode == "gpu":
        command += ["--cores", str(os.cpu_count())]  # on the CPU its default, the suite's 2 cores
    code = subprocess.run(command, cwd=REPO).returncode
    if not summary_file.exists():
        return {"status": "failed", "reason": f"dds.rehearsal exited with {code} and wrote no summary"}
    summary = json.loads(summary_file.read_text())
    preset = summary["presets"]["cifar10-paper"]
    if "error" in preset:  # the workflow did not finish: no job counts to report
        return {"status": "failed", "reason": f"dds.rehearsal exited with {code}: {preset['error'][-500:]}"}
    numbers = {k: preset.get(k) for k in ("jobs_run", "jobs_planned", "comparison_rows", "latex_compiled", "seconds")}
    numbers["missing_outputs"] = len(preset["missing_outputs"])
    problems = [f"dds.rehearsal exited with {code}"] if code else []
    if preset["jobs_run"] != preset["jobs_planned"]:
        problems.append(f"{preset['jobs_run']} jobs run, {preset['jobs_planned']} planned")
    if preset["missing_outputs"]:
        problems.append(f"planned outputs missing: {preset['missing_outputs'][:5]}")
    if not (preset["passed"] and summary["passed"]):
        problems.append("its summary says failed")
    if problems:
        return {"status": "failed", "reason": "; ".join(problems), "numbers": numbers}
    return {"status": "passed", "numbers": numbers}


STEP_FUNCTIONS = {
    "cuda_tests": cuda_tests,
    "gpu_lease": gpu_lease,
    "throughput": throughput_step,
    "certify": certify_step,
    "rehearsal": rehearsal_step,
}


def step(name: str, outdir: Path, mode: str, workdir: Path) -> int:
    import torch

    ctx = argparse.Namespace(
        outdir=outdir, mode=mode, workdir=workdir, device=torch.device("cuda" if mode == "gpu" else "cpu")
    )
    try:
        result = STEP_FUNCTIONS[name](ctx)
    except Exception as error:  # the step fails, the run goes on: the traceback is in its log
        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
    (outdir / "steps" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] != "failed" else 1


# --- the Markdown summary ---


def _scalars(numbers: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in numbers.items() if isinstance(v, int | float | str | bool) or v is None)


def markdown(summary: dict) -> str:
    env = summary["environment"]
    device = f"{env['gpu']} (CUDA {env['cuda']}, {env['gpus']} visible)" if env["gpu"] else "no GPU"
    lines = [
        "# GPU check" + (" (--cpu: the smoke test at tiny sizes on the CPU)" if summary["mode"] == "cpu" else ""),
        "",
        f"{device}; torch {env['torch']}, Python {env['python']}, {env['cpu_cores']} CPU cores; "
        f"started {env['started_at']}.",
        f"**{'Passed' if summary['passed'] else 'FAILED'}** in {summary['seconds']} s (budget of the steps "
        f"{summary['budget_s']:.0f} s).",
        "",
        "| step | status | seconds | key numbers |",
        "|---|---|---:|---|",
    ]
    for s in summary["steps"]:
        status = s["status"] + (f": {s['reason']}" if s.get("reason") else "")
        lines.append(f"| {s['name']} | {status} | {s['seconds']} | {_scalars(s.get('numbers', {}))} |")
    steps = {s["name"]: s.get("numbers") for s in summary["steps"]}
    if steps.get("throughput"):
        lines += _throughput_markdown(steps["throughput"])
    if steps.get("certify") and "fp32" in steps["certify"]:
        lines += [
            "",
            f"## Certification sampling: fused against the loop (`certify_throughput.py {steps['certify']['args']}`)",
            "",
            "| precision | loop draws/s | fused draws/s | speed-up | identical counts | predictions moved |",
            "|---|---:|---:|---:|---|---|",
        ]
        for precision in ("fp32", "bf16"):
            c = steps["certify"].get(precision)
            if c:
                lines.append(
                    f"| {precision} | {c['straightforward_draws_s']} | {c['fused_draws_s']} | {c['speedup']}x | "
                    f"{c['identical_counts']} | {c['predictions_moved']} |"
                )
    return "\n".join(lines) + "\n"


def _throughput_markdown(numbers: dict) -> list:
    peak = numbers.get("peak_tflops_spec")
    lines = [
        "",
        "## Denoising and classification: dds in fp32 and bf16 against the reference loop",
        "",
        f"{numbers['device']}: dense bf16 peak {f'{peak} TFLOP/s (data sheet)' if peak else 'unknown'}"
        + (
            f", large bf16 matrix products reach {numbers['matmul_tflops']} TFLOP/s"
            if "matmul_tflops" in numbers
            else ""
        )
        + ". Images/s; speed-ups against the reference loop (fp32, one image's draws per batch).",
        "",
        "| setup | stage | images x draws | batch | GFLOP/img | reference | fp32 | bf16 | fp32 speed-up | "
        "bf16 speed-up | bf16/fp32 | bf16 TFLOP/s | of peak | of matmul |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, setup in numbers["setups"].items():
        for r in setup["rows"]:
            peak_share = f"{100 * r['bf16_fraction_of_peak']:.1f}%" if "bf16_fraction_of_peak" in r else "-"
            matmul_share = f"{100 * r['bf16_fraction_of_matmul']:.1f}%" if "bf16_fraction_of_matmul" in r else "-"
            lines.append(
                f"| {name} | {r['stage']} | {r['images']} x {r['draws']} | {r['batch']} | {r['gflop_per_image']} | "
                f"{r['reference_img_s']} | {r['fp32_img_s']} | {r['bf16_img_s']} | {r['fp32_speedup']}x | "
                f"{r['bf16_speedup']}x | {r['bf16_over_fp32']}x | {r['bf16_tflops']} | {peak_share} | {matmul_share} |"
            )
    lines.append("")
    for name, setup in numbers["setups"].items():
        lines.append(f"- {name}, fp32 against bf16: {_scalars(setup['agreement'])}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("wheels", help="download the wheels (make gpu-wheels)").add_argument("folder", type=Path)
    sub.add_parser("missing", help="the wheels whose distributions are not installed").add_argument("folder", type=Path)
    sub.add_parser("env", help="this machine, as JSON")
    runner = sub.add_parser("run", help="every step (gpu_check.sh)")
    runner.add_argument("outdir", type=Path)
    runner.add_argument("--cpu", action="store_true", help="the smoke test: the same steps at tiny sizes on the CPU")
    runner.add_argument("--only", nargs="+", choices=STEPS, help="these steps only (the others: skipped)")
    runner.add_argument("--workdir", type=Path, help="the rehearsal's working folder (default: temporary)")
    runner.add_argument("--budget", type=float, help="seconds for all the steps (default: 450 on a GPU)")
    one = sub.add_parser("step", help="one step (what run starts)")
    one.add_argument("name", choices=STEPS)
    one.add_argument("outdir", type=Path)
    one.add_argument("--mode", choices=["gpu", "cpu"], required=True)
    one.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "wheels":
        prepare_wheels(args.folder.resolve())
    elif args.command == "missing":
        for wheel in missing_wheels(args.folder):
            print(wheel)
    elif args.command == "env":
        print(json.dumps(environment()))
    elif args.command == "run":
        mode = "cpu" if args.cpu else "gpu"
        workdir = args.workdir.resolve() if args.workdir else None
        sys.exit(run(args.outdir.resolve(), mode, args.only or [], workdir, args.budget or BUDGET[mode]))
    else:
        sys.exit(step(args.name, args.outdir, args.mode, args.workdir))


if __name__ == "__main__":
    main()

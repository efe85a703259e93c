"""A rehearsal of a published setup: its preset's whole workflow, every rule, run on stand-ins
in the official formats (dds.rehearsal.standins) with a small overlay, then checked: the jobs
run equal the dry run's count, every planned output exists, the report compares with the
paper, and the LaTeX tables compile."""

import http.server
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import yaml

from dds.rehearsal.overlays import OVERLAYS, REPO, SCALE

log = logging.getLogger(__name__)


class RehearsalError(RuntimeError):
    """A step of the rehearsal failed; the message says which and shows its output."""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the download is logged by the fetch_denoiser job
        pass


@contextmanager
def serve(folder):
    """An HTTP server for `folder` on the loopback address, on a free port: yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def snakemake(workdir: Path, configfiles: list, *args: str, cores: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    command += ["--cores", str(cores), "--configfile", *map(str, configfiles), *args]
    return subprocess.run(command, capture_output=True, text=True)


def planned_jobs(output: str) -> list[dict]:
    """(rule, its output files) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"(?m)^(?=(?:local)?rule \w+:)", output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        found = re.search(r"(?m)^    output: (.*)$", block)
        jobs.append({"rule": rule, "output": found.group(1).split(", ") if found else []})
    return jobs


def _check(done: subprocess.CompletedProcess, what: str) -> str:
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise RehearsalError(f"{what} failed (exit {done.returncode}):\n{text[-6000:]}")
    return text


def compile_latex(tables: list[Path], folder: Path) -> bool | None:
    """Compile every LaTeX table in a minimal booktabs document; None without pdflatex."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        log.warning("pdflatex is not on PATH: the LaTeX tables are not compiled")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"\\input{{{path.resolve()}}}\n\\clearpage\n" for path in tables)
    (folder / "tables.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n"
    )
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _check(done, f"pdflatex of {len(tables)} tables ({folder / 'tables.tex'})")
    return True


def comparison(workdir: Path, config: dict) -> dict:
    """The report's comparison with the paper, checked: the section is in the report, and the
    rows it shows have our accuracy beside the paper's, the differences and their flags.
    Returns the rows compared and the differences flagged as beyond sampling noise."""
    from dds import layout
    from dds.io import read_table
    from dds.reporting.paper import METRICS, compare, read_reference

    dataset = config["dataset"]["name"]
    reference = config["report"]["reference"]
    ours = read_table(workdir / layout.fill(layout.SUMMARY, dataset=dataset))
    table = compare(
        ours,
        read_reference(reference["table"]),
        dataset,
        reference["classifiers"],
        reference["attack"],
        reference["denoiser"],
        reference["n"],
    )
    filled = table.dropna(subset=[f"{m}_ours" for m in METRICS])
    if filled.empty:
        raise RehearsalError("the comparison with the paper has no row with our accuracy beside the paper's")
    if filled[[f"{m}_diff" for m in METRICS]].isna().any().any():
        raise RehearsalError("the comparison with the paper lacks differences where both accuracies are there")
    report = workdir / layout.fill(layout.REPORT, dataset=dataset)
    if "Comparison with the paper" not in report.read_text():
        raise RehearsalError(f"{report} has no comparison with the paper")
    flagged = int(sum(filled[f"{m}_noisy"].sum() for m in METRICS))
    return {"comparison_rows": len(filled), "comparison_flagged": flagged}


def merged_config(configfiles) -> dict:
    """The config Snakemake runs with: the files overlaid in order, validated, defaults filled."""
    from snakemake.utils import update_config

    from dds.config import validate

    config = {}
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()))
    return validate(config, REPO / "workflow" / "schemas" / "config.schema.yaml")


def rehearse(preset: str, size: str, device: str, workdir: Path, cores: int = 2, overlays=()) -> dict:
    """Build the stand-ins, run the preset's workflow on them and check it. Returns the summary."""
    start = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    standin = workdir / "standins"
    standin.mkdir(exist_ok=True)
    with serve(standin) as url:
        overlay = OVERLAYS[preset](standin, url, SCALE[preset][size], device)
        overlay_file = workdir / "rehearsal.yaml"
        overlay_file.write_text(yaml.safe_dump(overlay, sort_keys=False))
        configfiles = [REPO / "presets" / f"{preset}.yaml", overlay_file, *map(Path, overlays)]
        built = time.perf_counter()
        log.info("%s: stand-ins built in %.0f s; dry run", preset, built - start)
        jobs = planned_jobs(_check(snakemake(workdir, configfiles, "-n", cores=cores), "the dry run"))
        resources = ["--resources", "gpu=1"] if device.startswith("cuda") else []
        log.info("%s: %d jobs planned; running them on %d cores", preset, len(jobs), cores)
        text = _check(snakemake(workdir, configfiles, *resources, cores=cores), "the workflow")
        ran = time.perf_counter()
    finished = len(re.findall(r"Finished jobid: \d+", text))
    outputs = [path for job in jobs for path in job["output"]]
    missing = [path for path in outputs if not (workdir / path).exists()]
    again = planned_jobs(_check(snakemake(workdir, configfiles, "-n", cores=cores), "the second dry run"))
    config = merged_config(configfiles)
    dataset = config["dataset"]["name"]
    tables = sorted((workdir / "results" / dataset / "tables").rglob("*.tex"))
    summary = {
        "preset": preset,
        "size": size,
        "device": device,
        "jobs_planned": len(jobs),
        "jobs_run": finished,
        "jobs_by_rule": dict(sorted(Counter(job["rule"] for job in jobs).items())),
        "outputs_planned": len(outputs),
        "missing_outputs": missing,
        "jobs_left_after": len(again),
        **comparison(workdir, config),
        "latex_tables": len(tables),
        "latex_compiled": compile_latex(tables, workdir / "latex"),
        "seconds_standins": round(built - start, 1),
        "seconds_workflow": round(ran - built, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    # a comparison without rows and a table that does not compile have raised already
    summary["passed"] = finished == len(jobs) and not missing and not again and len(tables) > 0
    return summary

"""The self-contained HTML report: a summary of what was found (dds.reporting.findings), the
sections with their figures (re-encoded and embedded, dds.reporting.images) and tables (sortable,
each with its files), the perturbation norms, the models, time and memory per stage, the config
and the provenance of the run, and the precision of its numbers."""

import base64
import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata

import jinja2
import pandas as pd
import yaml

from dds.attacks.registry import METHODS
from dds.io import require_columns, write_text
from dds.precision import MIXED, PRECISION, combined
from dds.reporting.accuracy_sections import accuracy_section, norms_section
from dds.reporting.cells import Flagged, cell
from dds.reporting.images import embed
from dds.reporting.tables import ACCURACY_COLUMNS, MODEL_COLUMNS, RESOURCE_COLUMNS

PACKAGES = [
    "torch",
    "torchvision",
    "timm",
    "diffusers",
    "snakemake",
    "pandas",
    "numpy",
    "pyarrow",
    "seaborn",
    "jinja2",
]


def _git(repo_dir, *args) -> str | None:
    """Output of a git command in repo_dir, or None when git or the repository is absent."""
    try:
        done = subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(repo_dir) -> dict:
    """Where and with what the report was made: git commit and dirty flag, Python,
    package versions, platform, rendering time (UTC)."""
    status = _git(repo_dir, "status", "--porcelain")
    return {
        "git_commit": _git(repo_dir, "rev-parse", "HEAD") or "unknown",
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "platform": platform.platform(),
        "rendered_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _record(metrics: dict) -> str:
    """`key: value; ...` with floats to 4 significant digits."""
    return "; ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in metrics.items())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dds", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of vanishing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = cell
    env.filters["record"] = _record
    env.filters["csp_hash"] = _csp_hash
    env.tests["flagged"] = lambda value: isinstance(value, Flagged)
    return env


def _csp_hash(script) -> str:
    """The Content-Security-Policy source that lets exactly this inline script run."""
    return "sha256-" + base64.b64encode(hashlib.sha256(str(script).encode("utf-8")).digest()).decode("ascii")


def _precision(tables: pd.DataFrame, precisions: dict) -> dict:
    """The precision of the report's numbers: `overall`, and `tables` (each accuracy table's and
    each of `precisions`', name -> precision) to list where they are mixed."""
    named = {
        f"accuracy: {c}, {a}, {d}": combined(rows[PRECISION])
        for (c, a, d), rows in tables.groupby(MODEL_COLUMNS, sort=True)
    }
    named.update(precisions)
    overall = combined(named.values())
    return {"overall": overall, "mixed": overall.startswith(MIXED), "tables": named}


def _config_yaml(config: dict) -> str:
    # A JSON round trip turns tuples, paths and other non-YAML values into plain ones.
    plain = json.loads(json.dumps(config, default=str))
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _summary(summary: dict | None, sections: list) -> dict | None:
    """The summary as the template shows it: its figure embedded, each sentence with the
    navigation name of the section it links to (which must be on the page)."""
    if summary is None:
        return None
    names = {section["id"]: section["nav"] for section in sections}
    missing = [key for key, _ in summary["sentences"] if key not in names]
    if missing:
        raise ValueError(f"summary sentences about sections the report does not have: {missing}")
    return {
        "table": summary["table"],
        "sentences": [{"id": key, "text": text, "nav": names[key]} for key, text in summary["sentences"]],
        "figure": embed(*summary["figure"]) if summary.get("figure") else None,
    }


def render_report(
    tables: pd.DataFrame,
    figures: list,
    resources: pd.DataFrame,
    config: dict,
    provenance: dict,
    title: str,
    models: list | None = None,
    sections: list | None = None,
    precisions: dict | None = None,
    summary: dict | None = None,
) -> str:
    """The report as one HTML string; every name and value from the run is escaped.

    `tables`: accuracy tables (the columns of `dds.reporting.tables.accuracy_table`), any number of
    classifiers, shown with `figures` ((title, PNG path, caption)) in the accuracy section;
    `resources`: `stage_resources` output; `models`: {"name", "kind", "metrics": dict} per trained
    model; `sections`: the further sections (dds.reporting.blocks.make_section), in page order,
    those marked `first` before the accuracy section; `precisions`: the precision of each further
    table the report shows (name -> precision), beside the accuracy tables' own `precision` column;
    `summary`: {"table": the headline table, "sentences": [(section id, sentence)], "figure":
    (title, PNG path, caption) or None}, shown first.
    """
    require_columns(tables, ACCURACY_COLUMNS, "render_report tables")
    require_columns(resources, RESOURCE_COLUMNS, "render_report resources")
    further = sections or []
    attack_norms = {name: METHODS[spec["method"]].norm for name, spec in config.get("attacks", {}).items()}
    ordered = [
        *(s for s in further if s["first"]),
        accuracy_section(tables, figures),
        *(s for s in further if not s["first"]),
        norms_section(tables, attack_norms),
    ]
    shown = [{**s, "figures": [embed(*f) for f in s["figures"]]} for s in ordered]
    template = _environment().get_template("report.html")
    return template.render(
        title=title,
        precision=_precision(tables, precisions or {}),
        summary=_summary(summary, shown),
        sections=shown,
        resources=resources.to_dict("records"),
        config_yaml=_config_yaml(config),
        provenance=provenance,
        models=models or [],
    )


def write_report(html: str, path) -> None:
    write_text(html, path)

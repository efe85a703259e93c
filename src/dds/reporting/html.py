"""The self-contained HTML report: the precision of its numbers, accuracy tables, perturbation
norms, figures (embedded as base64 PNG), time and memory per stage, the config and the
provenance of the run."""

import base64
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from dds.attacks.registry import METHODS
from dds.io import DataFileError, require_columns, write_text
from dds.precision import MIXED, PRECISION, combined
from dds.reporting.cells import cell
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
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The attack projects onto the epsilon ball in float32; allow that rounding, no more.
_LINF_TOLERANCE = 1e-6


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
    env.filters["g"] = lambda value: f"{value:g}"
    env.filters["record"] = _record
    return env


def _accuracy_sections(tables: pd.DataFrame) -> list[dict]:
    """One section per (classifier, attack, denoiser), rows sorted by sigma then epsilon."""
    sections = []
    groups = tables.groupby(MODEL_COLUMNS, sort=True)
    for (classifier, attack, denoiser), rows in groups:
        sections.append(
            {
                "classifier": classifier,
                "attack": attack,
                "denoiser": denoiser,
                "precision": combined(rows[PRECISION]),
                "rows": rows.sort_values(["sigma", "epsilon"]).to_dict("records"),
            }
        )
    return sections


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


def _norm_sections(tables: pd.DataFrame, attack_norms: dict) -> list[dict]:
    """The measured norms depend on (classifier, attack, epsilon) only, not on the denoiser.
    `attack_norms`: attack name -> 'linf' or 'l2', the norm its epsilon bounds (default linf)."""
    sections = []
    for (classifier, attack), rows in tables.groupby(["classifier", "attack"], sort=True):
        norm = attack_norms.get(attack, "linf")
        rows = rows.drop_duplicates("epsilon").sort_values("epsilon")
        records = [
            {**r, "within": r[f"{norm}_max"] <= r["epsilon"] + _LINF_TOLERANCE}
            for r in rows[["epsilon", "linf_max", "l2_max", "l2_mean", "n"]].to_dict("records")
        ]
        sections.append({"classifier": classifier, "attack": attack, "norm": norm, "rows": records})
    return sections


def _embed_figures(figures: list) -> list[dict]:
    embedded = []
    for title, path_png, caption in figures:
        path = Path(path_png)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataFileError(f"{path}: figure file not found") from None
        if not data.startswith(_PNG_SIGNATURE):
            raise DataFileError(f"{path}: not a PNG file; the report embeds figures as PNG")
        embedded.append({"title": title, "caption": caption, "data": base64.b64encode(data).decode("ascii")})
    return embedded


def _config_yaml(config: dict) -> str:
    # A JSON round trip turns tuples, paths and other non-YAML values into plain ones.
    plain = json.loads(json.dumps(config, default=str))
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True)


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
) -> str:
    """The report as one HTML string; every name and value from the run is escaped.

    `tables`: accuracy tables (the columns of `dds.reporting.tables.accuracy_table`), any number of
    classifiers; `figures`: (title, PNG path, caption); `resources`: `stage_resources` output;
    `models`: {"name", "kind", "metrics": dict} per trained model; `sections`: further
    tables, each {"title", "caption", "tables": [{"caption", "columns", "rows"}]}, cells as text;
    `precisions`: the precision of each further table the report shows (name -> precision), beside
    the accuracy tables' own `precision` column.
    """
    require_columns(tables, ACCURACY_COLUMNS, "render_report tables")
    require_columns(resources, RESOURCE_COLUMNS, "render_report resources")
    template = _environment().get_template("report.html")
    return template.render(
        title=title,
        precision=_precision(tables, precisions or {}),
        accuracy=_accuracy_sections(tables),
        norms=_norm_sections(
            tables, {name: METHODS[spec["method"]].norm for name, spec in config.get("attacks", {}).items()}
        ),
        figures=_embed_figures(figures),
        resources=resources.to_dict("records"),
        config_yaml=_config_yaml(config),
        provenance=provenance,
        models=models or [],
        sections=sections or [],
    )


def write_report(html: str, path) -> None:
    write_text(html, path)

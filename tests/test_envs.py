"""The conda environments of the rules (envs/*.yaml) against the pip pins
(requirements.txt): the same versions, and every pinned package the code imports."""

import ast
import functools
import importlib
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict:
    """{package: version} of the `name==version` lines."""
    found = {}
    for line in lines:
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            found[canonical(name)] = version.strip()
    return found


REQUIREMENTS = pins((REPO / "requirements.txt").read_text().splitlines())


def env_pins(path: Path) -> dict:
    spec = yaml.safe_load(path.read_text())
    pip = [item for dep in spec["dependencies"] if isinstance(dep, dict) for item in dep.get("pip", [])]
    return pins(pip)


@functools.cache
def providers() -> dict:
    return metadata.packages_distributions()


def pinned_distributions(module_names) -> set:
    """The requirements.txt packages that provide these top-level module names."""
    return {canonical(d) for name in module_names for d in providers().get(name, [])} & set(REQUIREMENTS)


def test_there_is_an_environment_per_rule_family():
    assert [path.name for path in ENVS] == ["report.yaml", "torch.yaml"]


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_pin_equals_requirements(path):
    found = env_pins(path)
    assert found, f"{path.name} pins no package"
    for name, version in found.items():
        assert name in REQUIREMENTS, f"{path.name} pins {name}, which requirements.txt does not"
        assert version == REQUIREMENTS[name], (
            f"{path.name} pins {name}=={version}, requirements.txt {name}=={REQUIREMENTS[name]}: make them agree"
        )


def test_the_torch_environment_has_everything_the_library_imports():
    # every import statement of src/dds, also those inside functions (imported lazily), but
    # the rehearsal's: it drives Snakemake from outside, as a user does, and is never a job
    names = set()
    for source in (REPO / "src" / "dds").rglob("*.py"):
        if "rehearsal" in source.parts:
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    missing = pinned_distributions(names) - set(env_pins(REPO / "envs" / "torch.yaml"))
    assert not missing, f"envs/torch.yaml lacks {sorted(missing)}, which src/dds imports"


def rules() -> list[tuple]:
    """(rule, its .smk file, its conda environment's name or None, its script or None) of every rule."""
    found = []
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"(?m)^rule ", smk.read_text())[1:]:
            env = re.search(r"conda:\s*\n\s*(\w+)", rule)
            script = re.search(r'"\.\./scripts/(\w+)\.py"', rule)
            found.append((rule.split(":")[0], smk.name, env and env.group(1), script and script.group(1)))
    return found


def test_every_script_calls_the_stage_function_named_after_its_rule():
    for rule, smk, env, script in rules():
        if script is None:
            continue
        assert env in ("TORCH_ENV", "REPORT_ENV"), f"rule {rule} ({smk}) names no conda environment"
        assert script == rule, f"rule {rule} ({smk}) runs scripts/{script}.py, not scripts/{rule}.py"
        text = (REPO / "workflow" / "scripts" / f"{script}.py").read_text()
        call = re.fullmatch(r'from dds\.jobs import run_job\n\nrun_job\("(\w+)", "(\w+)", snakemake\)\n', text)
        assert call and call.group(2) == rule, f"scripts/{script}.py is not run_job(<module>, {rule!r}, snakemake)"
        module = importlib.import_module(f"dds.pipeline.{call.group(1)}")
        assert callable(getattr(module, rule, None)), f"scripts/{script}.py: dds.pipeline.{call.group(1)} has no {rule}"


# each stage in a forked child of one process that has loaded dds.runtime (every job loads it)
# and, for speed, seaborn (in envs/report.yaml): the stage's module, then whatever the function
# imports inside itself (its lazy imports)
LOADED_BY_STAGE = """
import ast, importlib, inspect, json, os, sys, textwrap
import dds.runtime, seaborn
loaded = {}
for module, function in json.loads(sys.argv[1]):
    read, write = os.pipe()
    if os.fork() == 0:
        stage = getattr(importlib.import_module("dds.pipeline." + module), function)
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(stage)))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom):
                importlib.import_module(node.module)
        os.write(write, " ".join(sys.modules).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        loaded[function] = pipe.read().split()
    assert os.wait()[1] == 0, function
print(json.dumps(loaded))
"""


@functools.cache
def loaded_by_report_rules() -> dict:
    """Rule -> the top-level modules its job loads, for every rule run in envs/report.yaml."""
    stages = [
        (
            re.search(r'run_job\("(\w+)"', (REPO / "workflow" / "scripts" / f"{rule}.py").read_text()).group(1),
            rule,
        )
        for rule, _, env, script in rules()
        if env == "REPORT_ENV" and script
    ]
    out = subprocess.run(
        [sys.executable, "-c", LOADED_BY_STAGE, json.dumps(stages)], capture_output=True, text=True, check=True
    ).stdout
    return {rule: {name.split(".")[0] for name in names} for rule, names in json.loads(out).items()}


@pytest.mark.parametrize("rule", sorted(r for r, _, env, script in rules() if env == "REPORT_ENV" and script))
def test_the_report_environment_has_what_its_rules_load(rule):
    # a report rule's job runs in envs/report.yaml (no model libraries): what its stage function
    # loads, at import and inside the function, must be there; a torch-only need fails here
    missing = pinned_distributions(loaded_by_report_rules()[rule]) - set(env_pins(REPO / "envs" / "report.yaml"))
    assert not missing, f"rule {rule} runs in envs/report.yaml, which lacks {sorted(missing)}, which it loads"

"""The conda environments of the rules (envs/*.yaml) against the pip pins
(requirements.txt): the same versions, and every pinned package the code imports."""

import ast
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


def pinned_distributions(module_names) -> set:
    """The requirements.txt packages that provide these top-level module names."""
    providers = metadata.packages_distributions()
    return {canonical(d) for name in module_names for d in providers.get(name, [])} & set(REQUIREMENTS)


def test_there_is_an_environment_per_rule_family():
    assert [path.name for path in ENVS] == ["report.yaml", "torch.yaml"]


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_every_pin_equals_requirements(path):
    found = env_pins(path)
    assert found, f"{path.name} pins no package"
    for name, version in found.items():
        assert name in REQUIREMENTS, f"{path.name} pins {name}, which requirements.txt does not"
        assert version == REQUIREMENTS[name], (
            f"{path.name} pins {name}=={version}, requirements.txt {name}=={REQUIREMENTS[name]}: make them agree")


def test_the_torch_environment_has_everything_the_library_imports():
    # every import statement of src/dds, also those inside functions (imported lazily)
    names = set()
    for source in (REPO / "src" / "dds").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    missing = pinned_distributions(names) - set(env_pins(REPO / "envs" / "torch.yaml"))
    assert not missing, f"envs/torch.yaml lacks {sorted(missing)}, which src/dds imports"


def test_the_report_environment_has_what_the_aggregation_loads():
    # the report rules' scripts call dds.aggregate (and dds.runtime); what importing them loads
    loaded = subprocess.run([sys.executable, "-c", "import sys, dds.pipeline.accuracy, dds.pipeline.report, dds.runtime; print(*sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.split()
    missing = pinned_distributions({name.split(".")[0] for name in loaded}) - set(
        env_pins(REPO / "envs" / "report.yaml"))
    assert not missing, f"envs/report.yaml lacks {sorted(missing)}, which dds.aggregate imports"


def test_every_script_runs_in_the_environment_of_its_family():
    # scripts calling dds.aggregate belong to the report environment, those calling dds.stages to torch's
    family = {"aggregate": "REPORT_ENV", "stages": "TORCH_ENV"}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"(?m)^rule ", smk.read_text())[1:]:
            name = rule.split(":")[0]
            env = re.search(r"conda:\s*\n\s*(\w+)", rule)
            script = re.search(r'"\.\./scripts/(\w+\.py)"', rule)
            if script is None:
                continue
            assert env, f"rule {name} ({smk.name}) names no conda environment"
            module = re.search(r"from dds import (\w+)", (REPO / "workflow" / "scripts" / script.group(1)).read_text())
            assert env.group(1) == family[module.group(1)], (
                f"rule {name} ({smk.name}) uses {env.group(1)} but its script calls dds.{module.group(1)}")

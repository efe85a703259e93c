"""The structure of the dds package: imports go down the layers only and form no cycle,
__init__.py files stay empty, modules and workflow scripts stay short, and what the workflow
imports to build its DAG loads no model library (a dry run must not wait for torch)."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# bottom to top: a module may import its own layer and those below it
LAYERS = ["data", "attacks", "models", "diffusion", "smoothing", "evaluation", "reporting", "pipeline", "rehearsal"]
# the torch-free registries config reads to validate a config and derive its defaults
CONFIG_MAY_IMPORT = {"dds.attacks.registry", "dds.diffusion.checkpoints", "dds.diffusion.flags"}
MAX_MODULE_LINES = 300
MAX_SCRIPT_LINES = 5
HEAVY = ["torch", "torchvision", "timm", "diffusers", "torchattacks", "kornia", "matplotlib", "seaborn"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted((SRC / "dds").rglob("*.py"))}


def imported(name: str) -> set[str]:
    """The dds modules `name` imports anywhere in its source (inside functions too); `from
    package import x` counts as importing the module package.x when there is one."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names)
    return {target for target in found if target == "dds" or target.startswith("dds.")}


IMPORTS = {name: imported(name) for name in MODULES}


def layer(name: str) -> int:
    """0 for the top shared modules (dds.config, dds.io, ...), else 1 + the package's place in LAYERS."""
    parts = name.split(".")
    if len(parts) == 2 and parts[1] not in LAYERS:
        return 0
    return 1 + LAYERS.index(parts[1])


def test_every_package_has_a_layer():
    packages = {name.split(".")[1] for name in MODULES if name != "dds" and (SRC / Path(*name.split("."))).is_dir()}
    assert packages <= set(LAYERS), f"packages with no layer: {sorted(packages - set(LAYERS))} (add them to LAYERS)"


def test_every_import_resolves_to_a_module():
    unknown = {
        f"{name} imports {target}" for name, targets in IMPORTS.items() for target in targets if target not in MODULES
    }
    assert not unknown, "\n".join(sorted(unknown))


def test_imports_go_down_the_layers():
    upward = []
    for name, targets in IMPORTS.items():
        if name == "dds":
            continue
        for target in sorted(targets & set(MODULES) - {"dds"}):
            if layer(name) == 0:
                allowed = layer(target) == 0 or (name == "dds.config" and target in CONFIG_MAY_IMPORT)
            else:
                allowed = layer(target) <= layer(name)
            if not allowed:
                upward.append(f"{name} imports {target}")
    assert not upward, (
        "imports against the layering (top shared modules < " + " < ".join(LAYERS) + "):\n" + "\n".join(upward)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}, "b": set()}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = {
        name: {target for target in targets if target in MODULES and target != "dds"}
        for name, targets in IMPORTS.items()
    }
    found = cycles(graph)
    assert not found, "modules importing each other (directly or round a cycle):\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_init_files_are_empty():
    filled = [str(path.relative_to(REPO)) for path in (SRC / "dds").rglob("__init__.py") if path.read_text().strip()]
    assert not filled, f"__init__.py files with content: {filled}"


def test_modules_are_short():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_workflow_scripts_only_call_the_library():
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert scripts
    long = {path.name: n for path in scripts if (n := len(path.read_text().splitlines())) > MAX_SCRIPT_LINES}
    assert not long, f"workflow scripts over {MAX_SCRIPT_LINES} lines (move the code into dds.pipeline): {long}"


def dag_modules() -> list[str]:
    """dds.config and the dds modules the workflow's rules files import (they load when Snakemake builds the DAG)."""
    found = {"dds.config"}
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        for match in re.finditer(r"(?m)^\s*(?:import (dds[\w.]*)|from (dds[\w.]*) import ([\w, ]+))", smk.read_text()):
            if match.group(1):
                found.add(match.group(1))
            else:
                for name in match.group(3).split(","):
                    full = f"{match.group(2)}.{name.strip()}"
                    found.add(full if full in MODULES else match.group(2))
    return sorted(found)


@pytest.mark.parametrize("module", dag_modules())
def test_building_the_dag_loads_no_model_library(module):
    # a fresh process: this one has imported torch already
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules)"], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = sorted(set(HEAVY) & set(loaded))
    assert not heavy, f"importing {module} imports {heavy}: import them inside the functions that need them"

"""The README and docs/ against the tree: every relative link leads to a file and heading that
exist, every page is linked from the README, every dds module or function and every file of
the repository that a page names in backticks exists, and the README's layout ("Where things
are") names only paths that exist, and every rules file and package there is."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose_lines(text: str):
    """The lines outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    for line in prose_lines(path.read_text()):
        match = re.match(r"^#{1,6} (.+)$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path):
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z]+:", target):
                yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files_and_headings_that_exist(page):
    for target in links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: link to {target!r}: no such file"
        if anchor:
            assert dest.suffix == ".md", f"{page.name}: anchor on a file that is not Markdown: {target!r}"
            assert anchor in anchors(dest), f"{page.name}: link to {target!r}: no such heading in {dest.name}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in links(REPO / "README.md")}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(REPO)}"


def layout_section() -> str:
    readme = (REPO / "README.md").read_text()
    assert "\n## Where things are\n" in readme
    return readme.split("\n## Where things are\n", 1)[1].split("\n## ", 1)[0]


def layout_paths() -> list[str]:
    """The paths the layout block names: an entry starts a line; an entry indented by two
    spaces lies in the last folder above it; deeper indentation continues a description."""
    block = layout_section().split("```\n", 2)[1]
    paths, folder = [], ""
    for line in block.splitlines():
        if not line.strip() or line.startswith("   "):
            continue
        name = line.split()[0]
        if line.startswith("  "):
            paths.append(folder + name)
        else:
            paths.append(name)
            folder = name if name.endswith("/") else folder
    return paths


def test_layout_names_only_paths_that_exist():
    missing = [p for p in layout_paths() if not (REPO / p).exists()]
    assert not missing, f"README's layout names paths that do not exist: {missing}"


def test_layout_names_every_rules_file_and_package():
    named = {p.rstrip("/") for p in layout_paths()}
    smk = {str(p.relative_to(REPO)) for p in (REPO / "workflow" / "rules").glob("*.smk")}
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "src" / "dds").rglob("__init__.py")}
    packages.discard("src/dds")
    assert smk and packages
    assert not smk - named, f"rules files missing from README's layout: {sorted(smk - named)}"
    assert not packages - named, f"packages missing from README's layout: {sorted(packages - named)}"


def resolves(dotted: str) -> bool:
    """Whether `dds.a.b.name` is a module of src/dds, or a top-level function or class of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = REPO / "src" / Path(*parts[:cut])
        file = module.with_suffix(".py") if module.with_suffix(".py").exists() else module / "__init__.py"
        if file.exists():
            rest = parts[cut:]
            if not rest:
                return True
            if len(rest) > 1:
                return False
            tree = ast.parse(file.read_text())
            defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            return rest[0] in defined
    return False


def test_layout_tour_names_files_and_functions_that_exist():
    names = re.findall(r"`([^`\s]+)`", layout_section())
    paths = [n for n in names if "/" in n and "<" not in n]
    dotted = [n for n in names if n.startswith("dds.")]
    assert "workflow/rules/denoise.smk" in paths and "dds.pipeline.denoise.denoise_and_classify" in dotted
    missing = [p for p in paths if not (REPO / p).exists()] + [d for d in dotted if not resolves(d)]
    assert not missing, f"README's layout names files or dds objects that do not exist: {missing}"


TRACKED = r"(?:src|tests|workflow|benchmarks|presets|profiles|envs|docs|\.ci)/[\w./-]*"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_dds_names_and_repository_paths_exist(page):
    text = page.read_text()
    names = {n.rstrip("()") for n in re.findall(r"`(dds\.[\w.]+(?:\(\))?)`", text)}
    paths = set(re.findall(rf"`({TRACKED})(?:::\w+)?`", text))
    missing = sorted(n for n in names if not resolves(n)) + sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"{page.name} names dds modules, functions or files that do not exist: {missing}"

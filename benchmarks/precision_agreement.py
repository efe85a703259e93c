"""How far two runs of one config that differ only in precision agree, e.g. a preset in fp32
and the same preset with the bf16 overlay:

    snakemake --configfile presets/cifar10-paper.yaml --directory fp32 ...
    snakemake --configfile presets/cifar10-paper.yaml presets/bf16.yaml --directory bf16 ...
    python benchmarks/precision_agreement.py fp32/results/cifar10 bf16/results/cifar10

Both folders are results/<dataset> folders. Printed as Markdown: per prediction set
(undefended and denoised, per classifier, attack, epsilon, denoiser and sigma) the share of
images given the same class; per certification set the share given the same answer (class
or abstain), the images where only one run abstains, and the certified radii's difference
where both certify the same class; and per accuracy and certified table the largest
difference of a cell of each column, with the row where it is. The attacks run in fp32 in
both, so the adversarial images are the same and every difference comes from the precision
of the inference stages. Sets or tables present in only one folder are listed, not compared.
"""

import argparse
import re
import string
import sys
from pathlib import Path

from dds import layout
from dds.io import read_tables
from dds.precision import precision_of

PREDICTIONS = (layout.PREDICTIONS_UNDEFENDED, layout.PREDICTIONS_DENOISED)
CERTIFICATES = (layout.CERTIFICATES_CLEAN, layout.CERTIFICATES_ADVERSARIAL)
# kind of table -> (its pattern, the columns that name a row, the columns compared); the certified
# tables first, since the accuracy tables' pattern (tables/*/*/*) also matches theirs
TABLES = {
    "certified": (
        layout.CERTIFIED,
        ["source", "attack", "epsilon", "method", "radius"],
        ["certified_acc", "smoothed_acc"],
    ),
    "accuracy": (layout.TABLE, ["sigma", "epsilon"], ["clean_acc", "pgd_acc", "denoised_acc"]),
}


def _relative(pattern: str) -> str:
    return pattern.removeprefix(layout.ROOT + "/")


def _sets(root: Path, pattern: str, taken: set) -> dict:
    """The files of `pattern` under `root` (not among `taken`, which they join), grouped into sets:
    (wildcard, value) pairs but the shard -> the set's files in shard order."""
    relative = _relative(pattern)
    names = [name for _, name, _, _ in string.Formatter().parse(relative) if name and name != "shard"]
    paths = [p.relative_to(root).as_posix() for p in sorted(root.glob(re.sub(r"\{\w+\}", "*", relative)))]
    paths = [p for p in paths if p not in taken]
    taken.update(paths)
    groups = layout.group(paths, relative, *names)
    return {
        tuple(zip(names, key if len(names) > 1 else (key,))): [root / p for p in files] for key, files in groups.items()
    }


def _name(key) -> str:
    """`key`'s (name, value) pairs as text, numbers as %g, empty values left out."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in key if v != "")


def _paired(a: dict, b: dict, columns: list) -> tuple[list, list]:
    """(the sets of both folders with their rows joined on idx (suffixes _a, _b), the sets of one only)."""
    both = []
    for key in sorted(a.keys() & b.keys(), key=_name):
        left, right = read_tables(a[key], ["idx", *columns]), read_tables(b[key], ["idx", *columns])
        merged = left.merge(right, on="idx", suffixes=("_a", "_b"), validate="one_to_one")
        if len(merged) != len(left) or len(merged) != len(right):
            raise SystemExit(f"{_name(key)}: the two runs hold different images ({len(left)} and {len(right)})")
        both.append((key, merged))
    return both, sorted(_name(k) for k in a.keys() ^ b.keys())


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.4f} ({whole - part} different)" if whole else "—"


def predictions(a: Path, b: Path) -> tuple[list, list]:
    taken_a, taken_b = set(), set()
    sets_a = {k: v for p in PREDICTIONS for k, v in _sets(a, p, taken_a).items()}
    sets_b = {k: v for p in PREDICTIONS for k, v in _sets(b, p, taken_b).items()}
    both, alone = _paired(sets_a, sets_b, ["pred", "correct"])
    lines = ["| prediction set | images | same class | accuracy A | accuracy B |", "|---|---:|---:|---:|---:|"]
    totals = {}
    for key, m in both:
        same = int((m["pred_a"] == m["pred_b"]).sum())
        kind = "denoised" if "denoiser" in dict(key) else "undefended"
        total = totals.setdefault(kind, [0, 0])
        total[0], total[1] = total[0] + same, total[1] + len(m)
        acc = f"{m['correct_a'].mean():.4f} | {m['correct_b'].mean():.4f}"
        lines.append(f"| {_name(key)} | {len(m)} | {_rate(same, len(m))} | {acc} |")
    for kind, (same, count) in sorted(totals.items()):
        lines.append(f"| **all {kind} sets** | {count} | {_rate(same, count)} | | |")
    return lines, alone


def certificates(a: Path, b: Path) -> tuple[list, list]:
    taken_a, taken_b = set(), set()
    sets_a = {k: v for p in CERTIFICATES for k, v in _sets(a, p, taken_a).items()}
    sets_b = {k: v for p in CERTIFICATES for k, v in _sets(b, p, taken_b).items()}
    both, alone = _paired(sets_a, sets_b, ["predict", "radius"])
    lines = [
        "| certification set | images | same answer | abstains in one only | max abs radius difference | mean |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, m in both:
        same = m["predict_a"] == m["predict_b"]
        one_abstains = int(((m["predict_a"] == -1) != (m["predict_b"] == -1)).sum())
        difference = (m["radius_a"] - m["radius_b"])[same & (m["predict_a"] != -1)].abs()
        spread = f"{difference.max():.4f} | {difference.mean():.4f}" if len(difference) else "— | —"
        lines.append(f"| {_name(key)} | {len(m)} | {_rate(int(same.sum()), len(m))} | {one_abstains} | {spread} |")
    return lines, alone


def tables(a: Path, b: Path) -> tuple[list, list]:
    lines = ["| table | column | largest abs difference | at | cells |", "|---|---|---:|---|---:|"]
    alone = []
    taken_a, taken_b = set(), set()
    for kind, (pattern, keys, columns) in TABLES.items():
        sets_a, sets_b = _sets(a, pattern, taken_a), _sets(b, pattern, taken_b)
        alone += sorted(f"{kind}: {_name(k)}" for k in sets_a.keys() ^ sets_b.keys())
        for key in sorted(sets_a.keys() & sets_b.keys(), key=_name):
            left, right = (read_tables(sets[key], [*keys, *columns]) for sets in (sets_a, sets_b))
            m = left.merge(right, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
            for column in columns:
                difference = (m[f"{column}_a"] - m[f"{column}_b"]).abs()
                if difference.notna().any():
                    at = _name(m.loc[difference.idxmax(), keys].items())
                    lines.append(f"| {kind}: {_name(key)} | {column} | {difference.max():.4f} | {at} | {len(m)} |")
                else:
                    lines.append(f"| {kind}: {_name(key)} | {column} | — | | {len(m)} |")
    return lines, alone


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="results/<dataset> of the first run (e.g. fp32)")
    parser.add_argument("b", type=Path, help="results/<dataset> of the second run (e.g. bf16)")
    args = parser.parse_args(argv)
    for root in (args.a, args.b):
        if not root.is_dir():
            parser.error(f"{root}: no such folder (give the results/<dataset> folder of a run)")
    sections = [("Predictions", predictions), ("Certification", certificates), ("Tables", tables)]
    out, compared = [], False
    for title, compare in sections:
        lines, alone = compare(args.a, args.b)
        if len(lines) > 2:
            compared = True
            out += [f"## {title}", "", *lines, ""]
        if alone:
            out += [f"In one folder only ({title.lower()}): " + "; ".join(alone), ""]
    if not compared:
        print(f"{args.a} and {args.b} share no prediction, certification or table file", file=sys.stderr)
        return 1
    precision = {}
    for root in (args.a, args.b):
        files = [p for pattern in PREDICTIONS for p in root.glob(re.sub(r"\{\w+\}", "*", _relative(pattern)))]
        precision[root] = precision_of(files) if files else "no predictions"
    print(f"# Agreement of A = {args.a} ({precision[args.a]}) and B = {args.b} ({precision[args.b]})\n")
    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

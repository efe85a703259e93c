"""The precision of a table's numbers: every table a job writes names the precision its
numbers were computed in (column `precision`: the resolved one, so `auto` on CUDA reads
bf16; see dds.evaluation.inference), and every table made from such tables names theirs
combined: a mix of jobs run in different precisions reads "mixed: bf16, fp32" instead of
passing for one of them. Torch-free: the table and report jobs use it."""

import pandas as pd

PRECISION = "precision"  # the column of the tables that names the precision of their numbers
# the stages that take gradients (attack, adaptive attack, PGD iterations, attention maps)
# run their models as they are, without autocast, whatever `inference.precision` says
GRADIENT_PRECISION = "fp32"
MIXED = "mixed: "


def combined(precisions) -> str:
    """One precision for the results of many jobs (each a name, or already a combination):
    the name when they agree, else "mixed: " and the names in order."""
    names = sorted({name for p in precisions for name in str(p).removeprefix(MIXED).split(", ")})
    if not names:
        raise ValueError("no precision given: the results come from no job")
    return names[0] if len(names) == 1 else MIXED + ", ".join(names)


def with_precision(table: pd.DataFrame, precision: str) -> pd.DataFrame:
    """`table` with its `precision` column (every row: `precision`)."""
    return table.assign(**{PRECISION: precision})


def precision_of(paths) -> str:
    """The precision of the tables at `paths` (Parquet files with a `precision` column), combined."""
    from dds.io import read_table

    return combined({value for path in paths for value in read_table(path, [PRECISION])[PRECISION]})

"""What the report is made of: sections (an anchor, a title, a caption, figures, tables) and
tables (a caption, column headers, rows of cell text and the files they were read from)."""

import pandas as pd

from dds import layout
from dds.reporting.cells import cell

# the LaTeX twin of each table file the workflow writes one for
LATEX = {
    layout.TABLE: layout.TABLE_TEX,
    layout.CERTIFIED: layout.CERTIFIED_TEX,
    layout.BLUR_TABLE: layout.BLUR_TEX,
    layout.ADAPTIVE_TABLE: layout.ADAPTIVE_TEX,
    layout.PURIFICATION_TABLE: layout.PURIFICATION_TEX,
}


def table_files(pattern: str, **keys) -> list[str]:
    """A table's Parquet file and, where the workflow writes one, its LaTeX file, as paths
    relative to the report's folder (layout.REPORT lies in layout.ROOT, as every table does)."""
    return [layout.fill(p.removeprefix(layout.ROOT + "/"), **keys) for p in (pattern, LATEX.get(pattern)) if p]


def make_table(caption: str, columns: list, rows: list, files=()) -> dict:
    """One table of a section: its caption, column headers, rows of cell text and the files
    (paths relative to the report) its numbers come from."""
    return {"caption": caption, "columns": columns, "rows": rows, "files": list(files)}


def frame_table(caption: str, frame: pd.DataFrame, files=()) -> dict:
    """A table of every column of `frame` as it is: floats to 3 decimals, missing values as a dash."""
    rows = [
        [cell(v) if isinstance(v, float) or pd.isna(v) else str(v) for v in row]
        for row in frame.itertuples(index=False)
    ]
    return make_table(caption, [str(c) for c in frame.columns], rows, files)


def make_section(
    key: str, title: str, caption: str, tables: list, figures=(), nav: str | None = None, first: bool = False
) -> dict:
    """A report section: its anchor `key`, title, the caption under its title, its figures
    ((title, PNG path, caption)) and its tables; `nav`: its shorter name in the navigation;
    `first`: shown right after the summary, before the accuracy tables."""
    return {
        "id": key,
        "title": title,
        "nav": nav or title,
        "caption": caption,
        "figures": list(figures),
        "tables": tables,
        "first": first,
    }

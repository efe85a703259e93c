"""The one formatter of numbers in table cells, for the HTML report and the LaTeX tables."""

import pandas as pd

# a missing value: an em dash in HTML; "--" in LaTeX sources (an en dash without Unicode input)
MISSING_HTML = "—"
MISSING_LATEX = "--"


def cell(value, digits: int = 3, missing: str = MISSING_HTML, sign: bool = False) -> str:
    """Fixed-point text for a table cell with `digits` decimals (`sign`: always show + or -);
    `missing` for a missing value (None, NaN or pandas' NA)."""
    if value is None or pd.isna(value):
        return missing
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


class Flagged(str):
    """Cell text the report marks as a problem (a perturbation beyond its epsilon)."""

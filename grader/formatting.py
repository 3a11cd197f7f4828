"""Numbers as people read them, in evidence, feedback and reports: one definition for every writer."""

from __future__ import annotations

from typing import Any


def num(value: Any) -> str:
    """13808 -> '13,808'; 99.42 -> '99.42'; 3.0 -> '3'; 0.5 -> '0.5' (at most 4 decimals); anything else as str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def pct(value: Any) -> str:
    """A share 0..1 as a percentage: 0.8333 -> '83.3%'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def cells(numbers: Any) -> str:
    """[6] -> 'code cell 6'; [2, 6, 10] -> 'code cells 2, 6 and 10' (code cells counted from 1, as a student counts)."""
    numbers = [str(n) for n in (numbers or [])]
    if not numbers:
        return "no code cell"
    if len(numbers) == 1:
        return f"code cell {numbers[0]}"
    return f"code cells {', '.join(numbers[:-1])} and {numbers[-1]}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 cell', '3 cells' (many defaults to one + 's')."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"

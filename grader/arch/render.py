"""The layer table for people (rich) and for machines (JSON)."""

from __future__ import annotations

from rich.table import Table as RichTable

from grader.arch.engine import Table


def _num(pair) -> str:
    return f"{pair[0]:g}" if pair[0] == pair[1] else f"{pair[0]:g}x{pair[1]:g}"


def rich_table(table: Table, title: str | None = None) -> RichTable:
    out = RichTable(title=title, title_justify="left", show_footer=True)
    has_names = any(r.name for r in table.rows)
    out.add_column("#", justify="right", footer="")
    out.add_column("layer", footer="total")
    if has_names:
        out.add_column("module")
    if table.branches:
        out.add_column("from", justify="right")
    out.add_column("in", justify="right")
    out.add_column("out", justify="right", footer=str(table.output))
    out.add_column("params", justify="right", footer=f"{table.params:,}")
    out.add_column("no bias/bn", justify="right", footer=f"{table.weights:,}")
    out.add_column("RF", justify="right")
    out.add_column("jump", justify="right")
    out.add_column("start", justify="right")
    out.add_row("0", "input", *([""] if has_names else []), *([""] if table.branches else []),
                "", str(table.input), "", "", "1", "1", "0.5")
    for row in table.rows:
        out.add_row(
            str(row.index), row.label, *([row.name] if has_names else []),
            *([",".join(map(str, row.inputs))] if table.branches else []),
            str(row.in_shape), str(row.out_shape),
            f"{row.params:,}" if row.params else "", f"{row.weights:,}" if row.weights else "",
            _num(row.rf), _num(row.jump), _num(row.start),
        )
    return out

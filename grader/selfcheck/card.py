"""A self-check's score card (pure): HTML for a notebook's output, plain text (never an escape code) elsewhere.

Everything shown comes from a submission's run and is escaped; the HTML uses inline styles only (Colab and
VS Code show a cell's HTML without the page's CSS) and colours that read on light and dark themes.
"""

from __future__ import annotations

from html import escape

from grader.formatting import num
from grader.selfcheck.result import DEPTH_WORDS, CheckItem, CheckResult

COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "undecided": "#9a6700"}  # the verdict, by outcome
STATUS_COLOURS = {"passed": COLOURS["passed"], "partial": COLOURS["undecided"], "failed": COLOURS["failed"],
                  "not_measured": COLOURS["failed"], "not_judged": "#6e7781"}
NOTE_CHARS = 400  # a note longer than this is cut: a card is read at a glance


def status_words(status: str) -> str:
    return "not judged at this depth" if status == "not_judged" else status.replace("_", " ")


def _title(item: CheckItem) -> str:
    return item.title + (" (required)" if item.required else "")


def _points(item: CheckItem) -> str:
    return f"{num(item.points)}/{num(item.max_points)}"


def _clip(note: str) -> str:
    return note if len(note) <= NOTE_CHARS else note[:NOTE_CHARS] + " ..."


def headline(result: CheckResult) -> str:
    score = "not graded" if result.score is None else f"{num(result.score)} / {num(result.max_score)} points"
    against = f" against {result.rubric}" if result.rubric else ""
    return f"{result.notebook}{against} ({DEPTH_WORDS[result.depth]}): {score}"


def text(result: CheckResult) -> str:
    lines = [headline(result), *(_clip(note) for note in result.notes)]
    width = max((len(status_words(i.status)) for i in result.items), default=0)
    for item in result.items:
        lines.append(f"  {status_words(item.status):<{width}}  {_points(item):>7}  {_title(item)}"
                     + (f": {item.message}" if item.message else ""))
    to_change = result.to_change()
    if to_change:
        lines.append("What to change")
        lines += [f"- {item.title}: {item.to_change}" for item in to_change]
    if result.pass_rule:
        lines.append(f"Passing means: {result.pass_rule}.")
    lines.append(result.verdict())
    return "\n".join(lines)


def html(result: CheckResult) -> str:
    colour = COLOURS[result.outcome]
    rows = "".join(
        f'<tr><td style="padding:2px 8px 2px 0">{escape(_title(i))}</td>'
        f'<td style="padding:2px 8px;color:{STATUS_COLOURS[i.status]};font-weight:600;white-space:nowrap">'
        f"{escape(status_words(i.status))}</td>"
        f'<td style="padding:2px 8px;text-align:right;white-space:nowrap">{escape(_points(i))}</td>'
        f'<td style="padding:2px 0 2px 8px;opacity:.8">{escape(i.message)}</td></tr>'
        for i in result.items)
    notes = "".join(f'<div style="margin:2px 0">{escape(_clip(note))}</div>' for note in result.notes)
    to_change = result.to_change()
    change = ("" if not to_change else
              '<div style="margin-top:8px;font-weight:600">What to change</div><ul style="margin:4px 0">'
              + "".join(f"<li><b>{escape(i.title)}</b>: {escape(i.to_change)}</li>" for i in to_change) + "</ul>")
    rule = (f'<div style="margin-top:6px;opacity:.8">Passing means: {escape(result.pass_rule)}.</div>'
            if result.pass_rule else "")
    return (f'<div class="grader-check" data-outcome="{result.outcome}" style="border:1px solid {colour};'
            f'border-left:6px solid {colour};border-radius:4px;padding:8px 12px;margin:4px 0;'
            f'font-family:system-ui,sans-serif;font-size:13px;line-height:1.4">'
            f'<div style="font-weight:700;color:{colour};font-size:15px">{escape(result.verdict())}</div>'
            f'<div style="margin:2px 0 6px">{escape(headline(result))}</div>{notes}'
            f'<table style="border-collapse:collapse;margin-top:6px;font-size:inherit">'
            f'<tr><th style="text-align:left">item</th><th style="text-align:left;padding:0 8px">status</th>'
            f'<th style="padding:0 8px">points</th><th style="text-align:left;padding-left:8px">evidence</th></tr>'
            f"{rows}</table>{change}{rule}</div>")

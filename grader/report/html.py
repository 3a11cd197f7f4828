"""report.html: one self-contained page per student (pure: facts + score sheet in, a string out).

Self-contained means the file can be mailed, uploaded to an LMS or opened
offline: CSS inline, plots as `data:image/png;base64` URIs, no scripts, no
fonts or anything else fetched from the network. Autoescaping is on for every
value: verdict messages, output tails and feedback carry student-controlled text.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import jinja2
import numpy as np

from grader.facts import Facts
from grader.report import plots
from grader.report.summary import MISCLASSIFIED_SHOWN, Audience, Digits, build_view
from grader.rubric.sheet import ScoreSheet

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("grader.report", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
# A bad plot input (a malformed table, a confusion matrix of the wrong shape) costs that plot, not the report.
_PLOT_ERRORS = (ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True)
class Plot:
    title: str
    caption: str
    uri: str
    wide: bool = False


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _plot(notes: list[str], title: str, caption: str, draw: Callable[[], bytes], wide: bool = False) -> Optional[Plot]:
    try:
        return Plot(title, caption, data_uri(draw()), wide)
    except _PLOT_ERRORS as err:
        notes.append(f"{title}: could not be drawn ({err}).")
        return None


def _eval_plots(facts: Facts, images, labels, predictions, notes: list[str], collapsed: bool) -> list[Plot]:
    """The test-set pictures; predictions collapsed to one digit keep only the per-digit bars (a sentence says
    the rest: a one-column confusion matrix and a grid of the same wrong digit add nothing)."""
    ev = facts.eval
    confusion, per_class, misclassified = ev.confusion, ev.per_class, ev.misclassified  # as the plots see them
    out = []
    if confusion is not None and not collapsed:
        out.append(_plot(notes, "Confusion matrix",
                         "Rows are the true digit, columns the prediction: the diagonal is right, "
                         "every other number is a mistake (in bold).", lambda: plots.confusion_png(confusion)))
    if per_class is not None:
        out.append(_plot(notes, "Accuracy per digit",
                         "On a fixed 0-100% axis, so small differences look small; the dashed line is the "
                         "overall accuracy.",
                         lambda: plots.per_class_png(per_class, ev.accuracy)))
    if misclassified and not collapsed:
        shown = min(len(misclassified), MISCLASSIFIED_SHOWN)
        what = f"The first {shown} of {len(misclassified):,} misclassified test images"
        if images is None or labels is None:
            notes.append(f"{what} are not drawn: the report was written without the test images.")
        else:
            titles = "the true and predicted digit" if predictions is not None else \
                "the true digit (the predicted one was not kept)"
            out.append(_plot(notes, "Misclassified digits", f"{what}, titled with {titles}.",
                             lambda: plots.misclassified_png(images, labels, misclassified, predictions), wide=True))
    return [p for p in out if p is not None]


def render_html(facts: Facts, sheet: ScoreSheet, *, student: str, audience: Audience = "student",
                images: Optional[np.ndarray] = None, labels: Optional[Digits] = None,
                predictions: Optional[Digits] = None) -> str:
    """The report page. `images` / `labels` / `predictions`: the whole test set's, for the misclassified grid.

    audience="student" leaves hidden rubric items out; "instructor" keeps and marks them.
    """
    view = build_view(facts, sheet, student=student, audience=audience, labels=labels, predictions=predictions)
    eval_notes: list[str] = []
    layer_notes: list[str] = []
    figures = (_eval_plots(facts, images, labels, predictions, eval_notes, view.evaluation.collapsed)
               if view.evaluation else [])
    layers_plot = None
    table = facts.model.table
    if view.layers and table is not None:  # (a layer view is made from the table)
        layers_plot = _plot(layer_notes, "Output size and receptive field",
                            "After each layer that changes them, in pixels: by the last layers the receptive field "
                            "(orange) should cover the digit.", lambda: plots.layers_png(table), wide=True)
    return _ENV.get_template("report.html.j2").render(v=view, plots=figures, layers_plot=layers_plot,
                                                         eval_notes=eval_notes, layer_notes=layer_notes)

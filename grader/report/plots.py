"""The report's pictures, as PNG bytes (pure: no files, no pyplot, no global backend).

Figures are built with `matplotlib.figure.Figure` and drawn by the Agg canvas
directly, so this module never changes matplotlib's backend for anyone else in
the process, and nothing here needs a display. matplotlib is imported on first
draw: it costs about a second, and importing `grader.report` (the quiz's
Gradescope writer, the gradebook) should not pay it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import numpy as np

from grader.report.summary import MISCLASSIFIED_SHOWN, Digits, misclassified_samples

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
INK = "#1f2933"
MUTED = "#7b8794"
BAD = "#d9480f"
ACCENT = "#3b5bdb"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins rather than constrained layout: the sizes are known, and layout doubles the drawing time.
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    # No Software/date metadata: the same facts give the same bytes.
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return out.getvalue()


def _tidy(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)
    ax.tick_params(colors=INK, labelsize=9)


def confusion_png(confusion: Sequence[Sequence[int]]) -> bytes:
    """Heat map of the 10x10 confusion matrix (rows: true digit, columns: predicted) with the counts written in.

    The colour scale is logarithmic: with ~1,000 correct answers per digit on
    the diagonal, a linear scale would leave the handful of mistakes invisible.
    """
    from matplotlib.colors import LogNorm

    matrix = np.asarray(confusion, dtype=np.int64)
    most = max(int(matrix.max()), 2)
    fig = _figure(5.4, 4.8)
    ax = fig.add_axes((0.09, 0.09, 0.72, 0.81))
    shown = np.ma.masked_equal(matrix, 0)
    image = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=most))
    ax.set_facecolor("#f8f9fa")
    threshold = np.sqrt(most)  # the middle of the log scale: darker cells get white text
    for (row, col), count in np.ndenumerate(matrix):
        if count == 0:
            continue
        mistake = row != col
        ax.text(col, row, f"{count}", ha="center", va="center", fontsize=8 if count < 1000 else 7,
                fontweight="bold" if mistake else "normal",
                color="white" if count > threshold else (BAD if mistake else INK))
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("predicted digit", color=INK)
    ax.set_ylabel("true digit", color=INK)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=9, colors=INK)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(image, cax=fig.add_axes((0.86, 0.17, 0.03, 0.65)))
    ticks = [t for t in (1, 10, 100, 1000, 10000) if t <= most]
    bar.set_ticks(ticks, labels=[f"{t:,}" for t in ticks])
    bar.ax.minorticks_off()
    bar.set_label("images (log scale)", color=MUTED, fontsize=8)
    bar.ax.tick_params(labelsize=7, colors=MUTED)
    return _png(fig)


def per_class_png(per_class: Sequence[float], overall: Optional[float] = None) -> bytes:
    """Bar chart of accuracy per digit (percent) on a fixed 0-100% axis, with the overall accuracy dashed.

    Never zoomed to where the differences are: on a 98.9-99.6 axis a 0.3-point gap looks like a cliff. The
    value is written on each bar, for whoever wants the decimals.
    """
    values = np.asarray(per_class, dtype=float)
    fig = _figure(5.4, 3.6)
    ax = fig.add_axes((0.14, 0.15, 0.83, 0.76))
    digits = np.arange(len(values))
    ax.bar(digits, values, width=0.7, color=ACCENT)
    for d, v in enumerate(values):
        ax.text(d, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7.5, color=INK)
    if overall is not None:
        ax.axhline(overall, color=INK, linewidth=1, linestyle="--")
        ax.set_title(f"dashed line: overall {overall:.2f}%", loc="left", fontsize=9, color=MUTED)
    ax.set_ylim(0, 108)  # room for the labels of bars at 100%
    ax.set_yticks([0, 20, 40, 60, 80, 100])
    ax.set_xticks(digits)
    ax.set_xlabel("digit", color=INK)
    ax.set_ylabel("accuracy (%)", color=INK)
    _tidy(ax)
    return _png(fig)


def misclassified_png(images: np.ndarray, labels: Digits, indices: Sequence[int],
                      predictions: Optional[Digits] = None, limit: int = MISCLASSIFIED_SHOWN) -> bytes:
    """A grid of the first `limit` misclassified test images, each titled "true 7 -> 2" ("true 7" without predictions).

    One mosaic image with the titles written over it: a figure with 36 axes takes seconds to draw.
    """
    samples = misclassified_samples(indices, labels, predictions, limit)
    if not samples:
        raise ValueError("no misclassified images to draw")
    columns = min(len(samples), 9)
    rows = -(-len(samples) // columns)
    side, gap, title = 28, 4, 10  # pixels of one digit, between digits, above each for its title
    cell_w, cell_h = side + gap, side + gap + title
    mosaic = np.zeros((rows * cell_h, columns * cell_w), dtype=np.uint8)
    for n, sample in enumerate(samples):
        top, left = (n // columns) * cell_h + title, (n % columns) * cell_w + gap // 2
        mosaic[top:top + side, left:left + side] = images[sample.index]
    fig = _figure(columns * 1.0, rows * 1.0 * cell_h / cell_w)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for n, sample in enumerate(samples):
        ax.text((n % columns) * cell_w + cell_w / 2 - 0.5, (n // columns) * cell_h + title - 1.5, sample.caption,
                ha="center", va="bottom", fontsize=8, color=BAD if sample.predicted is not None else INK)
    return _png(fig)


def layers_png(table: Sequence[dict]) -> bytes:
    """Output size and receptive field (pixels) along the stack: where the RF overtakes the map.

    Only layers that change one of the two get a point (batch norm, ReLU, dropout
    and 1x1 convolutions would be flat steps); flattened outputs end the line.
    """
    def first(value):
        return value[0] if isinstance(value, (list, tuple)) else value

    points = [("in", int(str(table[0]["in"]).split("x")[0]), 1)] if table else []
    for row in table:
        shape = row.get("out_shape")
        if not (isinstance(shape, list) and len(shape) == 3):
            break
        point = (str(row.get("index", "")), shape[0], first(row.get("rf")))
        if point[1:] != points[-1][1:]:
            points.append(point)
    if len(points) < 2:
        raise ValueError("no spatial layers to draw")
    names, size, rf = zip(*points, strict=True)
    x = np.arange(len(points))
    fig = _figure(10.5, 3.0)
    ax = fig.add_axes((0.06, 0.16, 0.8, 0.8))
    ax.plot(x, size, marker="o", markersize=4, color=ACCENT, label="output size")
    ax.plot(x, rf, marker="o", markersize=4, color=BAD, label="receptive field")
    ax.axhline(size[0], color=MUTED, linewidth=1, linestyle=":")
    ax.text(0.1, size[0], f"input {size[0]} px", va="bottom", fontsize=8, color=MUTED)
    for i, r in enumerate(rf):
        ax.annotate(str(r), (i, r), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7, color=BAD)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_xlabel("layer (# in the layer table)", color=INK)
    ax.set_ylabel("pixels", color=INK)
    ax.set_ylim(0, max(max(size), max(rf)) * 1.15)
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _tidy(ax)
    return _png(fig)

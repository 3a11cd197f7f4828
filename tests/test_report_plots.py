"""The report's plots: PNG bytes, the same bytes for the same facts, clear errors for nothing to draw."""

from __future__ import annotations

import pytest

from grader.report import plots
from tests.test_report_samples import eval_arrays, passing

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_plot_is_a_png_and_drawing_twice_gives_the_same_bytes():
    facts, _ = passing()
    images, labels, predictions = eval_arrays()
    drawn = [plots.confusion_png(facts.eval.confusion), plots.per_class_png(facts.eval.per_class, facts.eval.accuracy),
             plots.misclassified_png(images, labels, facts.eval.misclassified, predictions),
             plots.layers_png(facts.model.table)]
    assert all(png.startswith(PNG) and len(png) > 5000 for png in drawn)
    assert plots.confusion_png(facts.eval.confusion) == drawn[0]


def test_the_misclassified_grid_has_at_most_36_digits_and_needs_at_least_one():
    images, labels, _ = eval_arrays()
    few = plots.misclassified_png(images, labels, [3, 5])
    many = plots.misclassified_png(images, labels, list(range(100)))
    assert few.startswith(PNG) and many.startswith(PNG) and len(few) < len(many)
    with pytest.raises(ValueError, match="no misclassified"):
        plots.misclassified_png(images, labels, [])


def test_a_stack_without_spatial_layers_has_no_size_plot():
    with pytest.raises(ValueError, match="no spatial layers"):
        plots.layers_png([{"index": 1, "label": "fc 10", "in": "784", "out": "10", "out_shape": [10], "rf": 1}])

"""Accuracy, per-class accuracy, confusion matrix and misclassified indices: predictions vs labels (pure)."""

from __future__ import annotations

import numpy as np

from grader.facts import EvalFacts


def metrics(predictions: np.ndarray, labels: np.ndarray, path: str) -> EvalFacts:
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    confusion = np.zeros((10, 10), dtype=np.int64)
    valid = (predictions >= 0) & (predictions < 10)
    np.add.at(confusion, (labels[valid], predictions[valid]), 1)
    per_class = confusion.diagonal() / np.maximum(np.bincount(labels, minlength=10), 1) * 100
    wrong = np.flatnonzero(predictions != labels)
    return EvalFacts(
        accuracy=round(float((predictions == labels).mean() * 100), 4),
        per_class=[round(float(v), 3) for v in per_class],
        confusion=confusion.tolist(),
        misclassified=wrong.tolist(),
        misclassified_as=predictions[wrong].astype(int).tolist(),
        path=path,
    )

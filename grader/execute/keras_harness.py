"""Kernel side for Keras 3 notebooks (torch backend): MNIST where Keras looks, `fit` counted, the model saved.

Under the torch backend a Keras model is a `torch.nn.Module`, so finding the model and
"the model that was really trained" (grader.execute.trained) are shared with torch;
what differs is here:

- `keras.datasets.mnist.load_data()` reads the grader's staged `~/.keras/datasets/mnist.npz`
  (grader.data.keras_mnist) instead of trying to download Google's copy;
- `Model.fit` is counted (Keras's own optimizers do not go through torch.optim's hook):
  optimizer steps, samples, epochs, and which model it updated;
- the input layout (NHWC, NCHW, HxW or flat 784) and scaling are probed from the test array
  the notebook built, compared with the raw test digits;
- the model is saved as a `.keras` file, which the clean evaluation loads with
  `safe_mode=True` (grader.evaluate.keras_clean): no student code, no predictions here.

Standard library only at module level; never raises into the student's code.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from grader.execute import trained

KERAS_FILE = "model.keras"
STAGED_NPZ = os.path.join("~", ".keras", "datasets", "mnist.npz")
_LAYOUTS = {(28, 28, 1): "nhwc", (1, 28, 28): "nchw", (28, 28): "nhw", (784,): "flat"}


def install(state: dict[str, Any]) -> None:
    """Called from the harness set-up when the notebook imports keras; `state` is the harness's counters."""
    import keras

    from grader.execute import cpu_budget

    _stage_mnist(keras)
    budget = cpu_budget.cpus()
    if budget is not None and getattr(keras.backend, "backend", lambda: None)() == "tensorflow":
        try:
            cpu_budget.apply_tensorflow(budget)
        except ImportError:
            pass
    fit = keras.Model.fit

    @functools.wraps(fit)
    def counted_fit(self, *args, **kwargs):
        if state.get("dry_run"):  # builds the model on one batch; no time goes into training
            args, kwargs = _one_batch(args, kwargs)
        before = iterations(self)
        with _loaders_uncounted(state):
            history = fit(self, *args, **kwargs)
        try:
            _count(self, history, iterations(self) - before, args, kwargs, state)
        except Exception:  # counting must never break the student's fit
            pass
        return history

    keras.Model.fit = counted_fit
    for name in ("evaluate", "predict"):  # not training: the torch DataLoaders Keras uses inside are not counted
        setattr(keras.Model, name, _uncounted(getattr(keras.Model, name), state))


class _loaders_uncounted:
    """Keras's torch backend feeds fit / evaluate / predict through torch DataLoaders, which the harness counts
    for torch notebooks; for Keras, fit is counted once here instead."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def __enter__(self):
        self.was = self.state["counting"]
        self.state["counting"] = False

    def __exit__(self, *exc):
        self.state["counting"] = self.was


def _uncounted(method, state: dict[str, Any]):
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        if state.get("dry_run"):
            args, kwargs = _one_batch(args, kwargs, fit=False)
        with _loaders_uncounted(state):
            return method(self, *args, **kwargs)

    return wrapped


def _one_batch(args, kwargs, fit: bool = True):
    """A dry run's fit / evaluate / predict on the first batch of what it was given."""
    size = kwargs.get("batch_size") or 32
    args = tuple(a[:size] if hasattr(a, "shape") else a for a in args[:2]) + tuple(args[2:])
    kwargs = {k: (v[:size] if k in ("x", "y") and hasattr(v, "shape") else v) for k, v in kwargs.items()}
    if fit:
        kwargs["epochs"] = 1
        kwargs.pop("nb_epoch", None)
    return args, kwargs


def _stage_mnist(keras) -> None:
    from keras.src.datasets import mnist as source

    original = source.load_data
    staged = os.path.expanduser(STAGED_NPZ)

    def load_data(path="mnist.npz"):
        if path == "mnist.npz" and os.path.exists(staged):
            import numpy as np

            with np.load(staged, allow_pickle=False) as f:
                return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
        return original(path)

    load_data.__doc__ = original.__doc__
    source.load_data = load_data
    keras.datasets.mnist.load_data = load_data


def iterations(model) -> int:
    """The model's optimizer's own step count (0: none)."""
    optimizer = getattr(model, "optimizer", None)
    try:
        return int(optimizer.iterations) if optimizer is not None else 0
    except Exception:
        return 0


def _count(model, history, steps: int, args, kwargs, state: dict[str, Any]) -> None:
    trained.stepped(model, "fit")
    state["optimizer_steps"] += max(steps, 0)
    epochs = len(getattr(history, "epoch", []) or [])
    x = args[0] if args else kwargs.get("x")
    size = _length(x)
    if size is None or not epochs:
        return
    split = kwargs.get("validation_split") or 0.0
    train_size = int(size * (1 - split)) if split else size
    entry = state["datasets"].setdefault(f"keras-fit-{id(x)}", {
        "type": "keras fit", "size": train_size, "train": True, "passes": 0, "samples": 0})
    entry["passes"] += epochs
    entry["batches_per_pass"] = steps // epochs if steps > 0 else None  # from Keras's own step count, not samples
    state["fitted"].add(model)  # its optimizer's own step count is read at the end (optimizer_state_steps)
    entry["samples"] += train_size * epochs
    state["samples_seen"] += train_size * epochs
    if state.get("device") == "cpu":
        try:
            state["device"] = next(model.parameters()).device.type
        except StopIteration:
            pass


def _length(x) -> int | None:
    shape = getattr(x, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(x)
    except TypeError:
        return None


def is_keras_model(value: Any) -> bool:
    import sys

    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.Model)


def probe_inputs(namespace: dict[str, Any], raw_images, wanted: str | None = None) -> dict[str, Any]:
    """How the notebook turned the test digits into model inputs: an array of 10,000 (the test set) whose values
    are an affine map of the raw pixels, in one of the layouts Keras notebooks use. Compared on real digits.
    Arrays in the model's own input layout (`wanted`) come first, then floating-point ones: a notebook keeps the
    raw `x_test` beside the `X_test` it feeds the model."""
    import numpy as np

    n = len(raw_images)
    candidates: list[tuple[bool, bool, int, str, Any, str]] = []  # (sort key..., name, array, layout)
    for name, value in namespace.items():
        shape = getattr(value, "shape", None)
        if name.startswith("_") or not isinstance(value, np.ndarray) or not shape or shape[0] != n:
            continue
        layout = _LAYOUTS.get(tuple(shape[1:]))
        if layout is None or not np.issubdtype(value.dtype, np.number):
            continue
        candidates.append((layout != wanted, not np.issubdtype(value.dtype, np.floating), len(candidates), name,
                           value, layout))
    for *_, name, value, layout in sorted(candidates, key=lambda c: c[:3]):
        shape = value.shape
        x = raw_images[:64].reshape(64, -1).astype(np.float64) / 255.0
        y = value[:64].reshape(64, -1).astype(np.float64)
        scale, shift = np.polyfit(x.ravel(), y.ravel(), 1)
        residual = float(np.max(np.abs(scale * x + shift - y)))
        if residual < 1e-3 and abs(scale) > 1e-6:
            return {"kind": "affine", "scale": float(scale), "shift": float(shift), "residual": residual,
                    "source": f"the test array `{name}` ({'x'.join(map(str, shape))})", "layout": layout}
    return {"kind": "affine", "scale": 1.0, "shift": 0.0, "layout": None,
            "source": "assumed: no array of the 10,000 test digits found in the notebook; pixels / 255"}


def finalize(namespace: dict[str, Any], model, out_dir: str, raw_images) -> dict[str, Any]:
    """The Keras part of the harness record: counts as model.summary() prints them, inputs, the saved file."""
    import numpy as np

    found: dict[str, Any] = {}
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    found["params"] = {"trainable": trainable, "total": int(model.count_params())}
    prep = probe_inputs(namespace, raw_images, _layout_of(model))
    layout = prep.pop("layout") or _layout_of(model)
    found["preprocess"] = prep
    if layout is None:
        found["bad_model"] = (f"the model's input shape {getattr(model, 'input_shape', None)} is not one the grader "
                              "feeds MNIST digits in (28x28x1, 1x28x28, 28x28 or 784)")
        return found
    probe = (raw_images[:8].astype(np.float32) / 255.0) * prep["scale"] + prep["shift"]
    probe = probe.reshape((8,) + {"nhwc": (28, 28, 1), "nchw": (1, 28, 28), "nhw": (28, 28), "flat": (784,)}[layout])
    try:
        out = np.asarray(model.predict(probe, verbose=0))
    except Exception as exc:
        found["bad_model"] = f"the model's predict fails on 8 test images: {exc.__class__.__name__}: {exc}"
        return found
    if out.shape != (8, 10):
        found["bad_model"] = f"the model maps 8 test images to {out.shape}; it must give 10 scores per image (8, 10)"
        return found
    if not np.isfinite(out).all():
        found["bad_model"] = "the model outputs NaN or infinite scores on test images"
        return found
    try:
        model.save(os.path.join(out_dir, KERAS_FILE))
        found["export"] = {"path": "keras", "file": KERAS_FILE, "layout": layout}
    except Exception as exc:
        reason = f"model.save(.keras): {exc.__class__.__name__}: {str(exc)[:300]}"
        found["export"] = {"path": "none", "reasons": [reason]}
    return found


def _layout_of(model) -> str | None:
    try:
        shape = tuple(model.input_shape[1:])
    except Exception:
        return None
    return _LAYOUTS.get(shape)

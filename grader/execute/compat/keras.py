"""keras-1 and keras-2: Keras-1/2 idioms of the course's EIP notebooks, read by Keras 3 (torch backend).

Each installer imports keras (the profile is only asked for where the environment has it)
and patches the one name or keyword it is about.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

from grader.execute.compat import mark

# Keras-1 layer keywords and their Keras-2+ names
_KERAS1_KEYWORDS = {"border_mode": "padding", "subsample": "strides", "init": "kernel_initializer",
                    "W_regularizer": "kernel_regularizer", "b_regularizer": "bias_regularizer"}


def convolution2d_signature() -> None:
    """`Convolution2D(32, 3, 3)`: Keras 1's (filters, rows, cols). Keras 3 reads the third number as
    `strides=3` without a word, which changes the model; here it is the kernel's width again.

    A function that returns a plain Conv2D, so the saved model holds only Keras's own classes.
    """
    import keras

    conv2d = keras.layers.Conv2D

    @functools.wraps(conv2d)
    def Convolution2D(filters, kernel_size=None, *args, **kwargs):
        keras1 = False
        if isinstance(kernel_size, int) and args and isinstance(args[0], int):
            kernel_size, args, keras1 = (kernel_size, args[0]), args[1:], True
        if kernel_size is None and "nb_row" in kwargs:  # Convolution2D(nb_filter=, nb_row=, nb_col=)
            kernel_size, keras1 = (kwargs.pop("nb_row"), kwargs.pop("nb_col")), True
        for old, new in _KERAS1_KEYWORDS.items():
            if old in kwargs:
                kwargs[new], keras1 = kwargs.pop(old), True
        if kwargs.pop("dim_ordering", None) is not None:
            keras1 = True
        if keras1:
            mark("keras-1: Convolution2D(n, kh, kw)")
        return conv2d(filters, kernel_size, *args, **kwargs)

    keras.layers.Convolution2D = Convolution2D


def _patch_fit(model_class) -> None:
    fit = model_class.fit
    if getattr(fit, "_grader_nb_epoch", False):
        return

    @functools.wraps(fit)
    def patched(self, *args, **kwargs):
        if "nb_epoch" in kwargs:
            mark("keras-1: fit(nb_epoch=)")
            kwargs["epochs"] = kwargs.pop("nb_epoch")
        return fit(self, *args, **kwargs)

    patched.__dict__["_grader_nb_epoch"] = True
    model_class.fit = patched


def nb_epoch() -> None:
    """`model.fit(X, Y, nb_epoch=10)`: Keras 1's name for `epochs=`."""
    import keras

    _patch_fit(keras.Model)


def np_utils() -> None:
    """`from keras.utils import np_utils; np_utils.to_categorical(y, 10)`: the module went in Keras 2.4."""
    import keras

    def to_categorical(*args, **kwargs):
        mark("keras-2: keras.utils.np_utils")
        return keras.utils.to_categorical(*args, **kwargs)

    module = types.ModuleType("keras.utils.np_utils", "Keras 2's np_utils, as the keras-2 compat profile keeps it")
    module.__dict__["to_categorical"] = to_categorical
    sys.modules["keras.utils.np_utils"] = module
    keras.utils.np_utils = module


def lr() -> None:
    """`Adam(lr=0.001)`: `lr` became `learning_rate` (Keras 2.3) and is an error in Keras 3."""
    import keras

    for name in dir(keras.optimizers):
        cls = getattr(keras.optimizers, name)
        if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
            continue
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_grader_lr", False):
            continue

        def make(init):
            @functools.wraps(init)
            def patched(self, *args, **kwargs):
                if "lr" in kwargs:
                    mark("keras-2: optimizer lr=")
                    kwargs.setdefault("learning_rate", kwargs.pop("lr"))
                return init(self, *args, **kwargs)

            patched.__dict__["_grader_lr"] = True
            return patched

        patched_class: Any = cls  # its method replaced at run time: more than its declared type can say
        patched_class.__init__ = make(init)


class _History(dict):
    """A history dict where `acc` / `val_acc` still find `accuracy` / `val_accuracy` (Keras 2.3 renamed them)."""

    _OLD = {"acc": "accuracy", "val_acc": "val_accuracy"}

    def __missing__(self, key):
        if key in self._OLD and self._OLD[key] in self:
            mark("keras-2: history['acc']")
            return self[self._OLD[key]]
        raise KeyError(key)


def acc_in_history() -> None:
    """`history.history['acc']`, `logs['val_acc']`: the names before Keras 2.3."""
    import keras

    history_class = keras.callbacks.History
    on_train_begin, on_epoch_end = history_class.on_train_begin, history_class.on_epoch_end

    def begin(self, logs=None):
        on_train_begin(self, logs)
        self.history = _History(self.history)

    def end(self, epoch, logs=None):
        on_epoch_end(self, epoch, logs)
        if not isinstance(self.history, _History):
            self.history = _History(self.history)

    history_class.on_train_begin, history_class.on_epoch_end = begin, end

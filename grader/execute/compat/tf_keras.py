"""tf-keras: Keras through TensorFlow (`from tensorflow.keras.layers import Conv2D`, `from tensorflow import keras`,
`tf.keras.Sequential`), read as Keras 3, which runs on the torch backend here.

Installed only where tensorflow is not importable. `tensorflow` is then a small module that
holds `keras` and nothing else: any other `tf.*` says TensorFlow is not in the grading
environment and what to write instead. Its finder is asked first for `tensorflow.*` names,
so `tensorflow.keras.layers` is keras.layers itself, never a second copy.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

from grader.execute.compat import mark
from grader.execute.compat.modules import made_spec

USED = "tf-keras: tensorflow.keras"
_MISSING = "TensorFlow itself is not in this grading environment, only its Keras: tf.keras is Keras 3 here"
# what to write instead of the tf.* names course notebooks use most
_INSTEAD = {
    "random": "keras.utils.set_random_seed(seed) for tf.random.set_seed, keras.random for random numbers",
    "config": "nothing: the grader chooses the device (torch.cuda.is_available() says whether there is a GPU)",
    "data": "NumPy arrays passed to model.fit(x, y, batch_size=...)",
    "test": "nothing: the grader chooses the device (torch.cuda.is_available() says whether there is a GPU)",
    "__version__": "keras.__version__",
}


def _instead(name: str) -> str:
    import keras

    if name in _INSTEAD:
        return _INSTEAD[name]
    if hasattr(keras.ops, name):
        return f"keras.ops.{name}"
    return "keras (keras.ops, keras.random, keras.utils) or NumPy"


def _tensorflow(module: types.ModuleType) -> types.ModuleType:
    def attr(name: str):
        if name == "keras":  # `import tensorflow as tf; tf.keras.Sequential(...)`
            import keras

            mark(USED)
            return keras
        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)
        raise AttributeError(f"tf.{name}: {_MISSING}; write {_instead(name)} instead")

    module.__dict__["__getattr__"] = attr  # PEP 562: looked up in the module's namespace
    # Keras itself asks `tf.executing_eagerly()` once tensorflow is in sys.modules; on the torch backend it is
    module.__dict__["executing_eagerly"] = lambda: True
    return module


def _keras_module(module: types.ModuleType) -> types.ModuleType:
    mark(USED)
    return importlib.import_module("keras" + module.__name__[len("tensorflow.keras"):])


class _TensorflowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname == "tensorflow":
            return made_spec(fullname, _tensorflow)
        if not fullname.startswith("tensorflow."):
            return None
        if fullname == "tensorflow.keras" or fullname.startswith("tensorflow.keras."):
            keras_name = "keras" + fullname[len("tensorflow.keras"):]
            if importlib.util.find_spec(keras_name) is None:
                raise ModuleNotFoundError(f"No module named {fullname!r}: tensorflow.keras is Keras 3 here (the "
                                          f"tf-keras compat profile), which has no {keras_name}", name=fullname)
            return made_spec(fullname, _keras_module)
        top = fullname.split(".")[1]
        raise ModuleNotFoundError(f"No module named {fullname!r}: {_MISSING}; write {_instead(top)} instead",
                                  name=fullname)


def tensorflow_keras() -> None:
    """`tensorflow.keras` as Keras 3, where tensorflow is not importable (keras must be: else skipped)."""
    if importlib.util.find_spec("tensorflow") is not None or any(
            isinstance(f, _TensorflowFinder) for f in sys.meta_path):
        return
    from keras.src.utils import module_utils

    # Keras's own `if tf.available:` checks (saving, seeding) would find the small module above once a notebook
    # imported it: TensorFlow is not there, and they must go on saying so
    lazy = getattr(module_utils, "tensorflow", None)
    if lazy is not None and hasattr(lazy, "_available"):
        lazy._available = False
    sys.meta_path.insert(0, _TensorflowFinder())

"""Compat profiles: small shims, loaded in the student's kernel before the first cell, for APIs the course used then.

A rubric turns them on (`environment: compat: [torch-1.x, keras-2]`); a student should
lose no point for code that was right when it was written. Each shim records itself
when the student's code actually goes through it (`used()`), and the facts list those
(`train.compat_shims`), so a report says which old APIs were read for the student.

    torch-1.x  torch1.py   DataLoader iterators' `.next()` (removed in PyTorch 1.13);
                           `tqdm.tqdm_notebook` / `tnrange` (deprecated, gone in tqdm 5) as the text bar
    torch-2.x  torch2.py   schedulers' `verbose=` (removed in PyTorch 2.7), printing the rates as 2.0-2.6 did;
                           `torch.load` of a pickled model (weights_only=True by default since PyTorch 2.6)
    keras-1    keras.py    `Convolution2D(n, kh, kw)` read as kernel (kh, kw), not strides kw;
                           `border_mode=` / `subsample=` / `init=`; `fit(nb_epoch=)` as `epochs=`
    keras-2    keras.py    `keras.utils.np_utils.to_categorical`; `lr=` as `learning_rate=` in optimizers;
                           history / logs `acc`, `val_acc` beside `accuracy`, `val_accuracy`
    colab      colab.py    `google.colab` where it is missing: `drive.mount` makes `/content/drive/MyDrive` the
                           hand-in's root, `files.upload()` returns the files beside the notebook, the other
                           helpers do nothing; `%cd` / `os.chdir` into `/content/...` lands in the hand-in folder
                           it names, else the notebook's; `from drive.MyDrive.<...>.model import Net` and
                           `sys.path` entries below /content find the hand-in's modules
    tf-keras   tf_keras.py `tensorflow.keras`, `from tensorflow import keras`, `tf.keras` as Keras 3 where
                           tensorflow is missing; any other `tf.*` says TensorFlow is not there and what to write

Kernel side: imports only the standard library at module level, and never raises into
the student's code (a shim that cannot be installed is skipped and said so in `skipped()`).
"""

from __future__ import annotations

from collections.abc import Callable

_used: list[str] = []
_skipped: list[str] = []
# where the hand-in was staged inside the sandbox (set by load): "root" (the hand-in's root folder) and
# "notebook_dir" (the notebook's folder, the kernel's working directory); shims that map paths read it
_context: dict[str, str] = {}


def context() -> dict[str, str]:
    return dict(_context)


def mark(shim: str) -> None:
    """Called by a shim each time student code goes through it; recorded once."""
    if shim not in _used:
        _used.append(shim)


def used() -> list[str]:
    return list(_used)


def skipped() -> list[str]:
    return list(_skipped)


def _installers() -> dict[str, list[tuple[str, Callable[[], None]]]]:
    from grader.execute.compat import colab, keras as keras_shims, tf_keras, torch1, torch2

    return {
        "torch-1.x": [("dataiter.next()", torch1.dataiter_next), ("tqdm_notebook", torch1.tqdm_notebook)],
        "torch-2.x": [("scheduler verbose=", torch2.scheduler_verbose), ("torch.load", torch2.load_whole_objects)],
        "keras-1": [("Convolution2D(n, kh, kw)", keras_shims.convolution2d_signature),
                    ("nb_epoch=", keras_shims.nb_epoch)],
        "keras-2": [("np_utils", keras_shims.np_utils), ("lr=", keras_shims.lr),
                    ("acc / val_acc", keras_shims.acc_in_history)],
        "colab": [("google.colab", colab.google_colab), ("%cd /content", colab.chdir),
                  ("drive.MyDrive imports", colab.drive_imports)],
        "tf-keras": [("tensorflow.keras", tf_keras.tensorflow_keras)],
    }


def load(profiles: list[str], *, root: str | None = None, notebook_dir: str | None = None) -> None:
    """Install every shim of the given profiles (unknown names are skipped: the rubric schema checks them).
    `root`, `notebook_dir`: where the hand-in lies inside the sandbox (see `context()`)."""
    _context.update({k: v for k, v in (("root", root), ("notebook_dir", notebook_dir)) if v is not None})
    installers = _installers()
    for profile in profiles:
        for name, install in installers.get(profile, []):
            try:
                install()
            except Exception as exc:  # e.g. keras-2 in an environment without keras: nothing to shim
                _skipped.append(f"{profile}: {name}: {exc.__class__.__name__}: {exc}")

"""colab: Colab's idioms, read against the hand-in folder.

On Colab a course notebook mounts Google Drive, `%cd`s into its folder there and imports its
modules from it, or uploads them into /content, Colab's working directory. Here the hand-in
is that folder: `/content/drive/MyDrive` (and `My Drive`) is the hand-in's root, `/content`
is the notebook's folder (the kernel's working directory), and the other `google.colab`
helpers do nothing. Installed only where the real module is not importable: its finder is
the last one asked. Where the runner gave no hand-in (compat.context()), both are the
kernel's first working directory.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import posixpath
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from grader.execute.compat import context, mark
from grader.execute.compat.modules import made_spec

CONTENT = "/content"  # Colab's working directory: uploads land there, Drive is mounted below it
_DRIVE_FOLDERS = ("MyDrive", "My Drive")
_mounts: list[str] = [f"{CONTENT}/drive"]  # where Drive is: Colab's usual place, and each drive.mount's
_places: dict[str, Path] = {}


def _place(which: str) -> Path:
    """The hand-in's "root" or "notebook_dir" inside the sandbox (read once, before any %cd)."""
    if not _places:
        given = context()
        notebook_dir = Path(given.get("notebook_dir") or os.getcwd())
        _places.update(notebook_dir=notebook_dir, root=Path(given.get("root") or notebook_dir))
    return _places[which]


def _split(rest: str) -> list[str]:
    return [part for part in rest.split("/") if part]


def _colab_path(path: object) -> Optional[tuple[Path, list[str]]]:
    """(the hand-in folder a Colab path starts from, the path's parts below it); None for any other path, and for
    one below Colab's own folders that exists as it is."""
    try:  # a file descriptor is none of these; a __fspath__ may still return neither str nor bytes
        text = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else None
    except TypeError:
        return None
    if not isinstance(text, str):
        return None
    if text.split("/")[0] in _mount_names() and not os.path.exists(text):
        text = posixpath.join(CONTENT, text)  # `%cd drive/MyDrive/...` from Colab's working directory
    normal = posixpath.normpath(os.path.expanduser(text))
    found = next(((_place("root"), _split(normal[len(top):])) for top in _drive_tops()
                  if normal == top or normal.startswith(top + "/")), None)
    if found is None and (normal == CONTENT or normal.startswith(CONTENT + "/")):
        found = _place("notebook_dir"), _split(normal[len(CONTENT):])
    # a path that is there is left as it is (MNIST staged where the notebook reads it, a machine with a real
    # /content), but for Colab's own folders: the sandbox makes /content, .../MyDrive as the parents of those
    return None if found is None or (found[1] and os.path.exists(normal)) else found


def _drive_tops() -> Iterator[str]:
    return (posixpath.join(mount, folder) for mount in _mounts for folder in _DRIVE_FOLDERS)


def _candidates(base: Path, parts: list[str]) -> Iterator[Path]:
    """Where a Colab path may lie in the hand-in, nearest first: the whole path below `base`, then shorter and
    shorter tails of it (the hand-in is one folder somewhere in the student's Drive), then its last part in the
    notebook's folder."""
    if not parts:
        yield base
    for start in range(len(parts)):
        yield base.joinpath(*parts[start:])
    if parts:
        yield _place("notebook_dir") / parts[-1]


def _colab_dir(path: object) -> Optional[Path]:
    """The hand-in folder a Colab path names, else the notebook's folder; None for any other path."""
    found = _colab_path(path)
    if found is None:
        return None
    return next((c for c in _candidates(*found) if c.is_dir()), _place("notebook_dir"))


# --- google.colab ---------------------------------------------------------------------------------------------


class _Helper:
    """A Colab helper with nothing to do here (`output.clear()`, `auth.authenticate_user()`, `cv2_imshow(img)`):
    any attribute is another helper, and a call does nothing and returns None."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> _Helper:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Helper(f"{self._name}.{attr}")

    def __call__(self, *args: object, **kwargs: object) -> None:
        mark(f"colab: {self._name}")

    def __repr__(self) -> str:
        return f"<google.colab.{self._name}: does nothing outside Colab>"


def mount(mountpoint: str = f"{CONTENT}/drive", *args: object, **kwargs: object) -> None:
    """drive.mount: the mount point's MyDrive is the hand-in's root from now on."""
    mark("colab: drive.mount")
    point = posixpath.normpath(os.fspath(mountpoint))
    if point not in _mounts:
        _mounts.append(point)
    print(f"Mounted at {mountpoint} (graded: {posixpath.join(point, 'MyDrive')} is the hand-in folder)")


def upload(*args: object, **kwargs: object) -> dict[str, bytes]:
    """files.upload: Colab puts the chosen files in the working directory and returns their contents; here the
    files handed in beside the notebook are those."""
    mark("colab: files.upload")
    folder = _place("notebook_dir")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and p.suffix != ".ipynb" and p.is_file() and not p.is_symlink()}


# the helpers that do something here
_OWN: dict[str, dict[str, Any]] = {"drive": {"mount": mount}, "files": {"upload": upload}}


def _colab_module(module: types.ModuleType) -> types.ModuleType:
    name = module.__name__
    if name == "google.colab":
        def submodule(attr: str) -> types.ModuleType:  # `from google.colab import output`
            if attr.startswith("__"):
                raise AttributeError(attr)
            return importlib.import_module(f"{name}.{attr}")

        module.__dict__["__getattr__"] = submodule  # PEP 562: looked up in the module's namespace
    elif name.startswith("google.colab."):
        helper = name[len("google.colab."):]
        module.__dict__.update(_OWN.get(helper, {}))

        def helper_attr(attr: str) -> _Helper:
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _Helper(f"{helper}.{attr}")

        module.__dict__["__getattr__"] = helper_attr
    return module


class _ColabFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname in ("google", "google.colab") or fullname.startswith("google.colab."):
            return made_spec(fullname, _colab_module)
        return None


def google_colab() -> None:
    """`from google.colab import drive, files, output`: the shim package, asked after every real finder."""
    if not any(isinstance(f, _ColabFinder) for f in sys.meta_path):
        sys.meta_path.append(_ColabFinder())


# --- %cd, os.chdir ---------------------------------------------------------------------------------------------


def chdir() -> None:
    """`%cd /content/drive/MyDrive/ERA/S5`, `os.chdir('/content')`: into the hand-in folder the path names, else
    the notebook's folder. IPython's %cd calls os.chdir; any other path is left as it is."""
    _place("root")  # read the notebook's folder now, before any cd
    change = os.chdir
    if getattr(change, "_grader_colab", False):
        return

    @functools.wraps(change)
    def colab_chdir(path):
        mapped = _colab_dir(path)
        if mapped is not None:
            mark("colab: %cd /content/...")
            path = mapped
        return change(path)

    colab_chdir.__dict__["_grader_colab"] = True
    os.chdir = colab_chdir


# --- imports through Drive --------------------------------------------------------------------------------------


def _mount_names() -> set[str]:
    """`drive`: what /content (Colab's working directory, on its sys.path) shows of each mount point below it."""
    return {posixpath.basename(m) for m in _mounts if posixpath.dirname(m) == CONTENT}


def _drive_spec(fullname: str, parts: list[str]):
    """The spec of the hand-in's module or package for `drive.MyDrive.<parts>`, None where there is none."""
    for candidate in _candidates(_place("root"), parts):
        init, source = candidate / "__init__.py", candidate.with_name(candidate.name + ".py")
        if init.is_file():
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(candidate)])
        if source.is_file():
            return importlib.util.spec_from_file_location(fullname, source)
        if candidate.is_dir():
            spec = made_spec(fullname, lambda module: module)
            spec.submodule_search_locations = [str(candidate)]
            return spec
    return None


def _unfound_folder(module: types.ModuleType) -> types.ModuleType:
    """A Drive folder the hand-in does not have (`ColabNotebooks` in drive.MyDrive.ColabNotebooks.model): what is
    imported from it is looked up in the hand-in; a name found nowhere (it was the module, not a folder) says
    which file the hand-in lacks."""
    name = module.__name__

    def lookup(attr: str) -> types.ModuleType:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if _drive_spec(f"{name}.{attr}", name.split(".")[2:] + [attr]) is not None:
            return importlib.import_module(f"{name}.{attr}")
        parts = name.split(".")[2:]
        raise ModuleNotFoundError(
            f"No module named {name!r}: the hand-in has no {'/'.join(parts)}.py and no {parts[-1]}.py (the colab "
            f"compat profile reads drive.MyDrive as the hand-in's folder): hand in that file with the notebook",
            name=name)

    module.__dict__["__getattr__"] = lookup  # PEP 562: looked up in the module's namespace
    return module


class _DriveFinder(importlib.abc.MetaPathFinder):
    """`from drive.MyDrive.ColabNotebooks.model import Network`: on Colab the working directory /content holds the
    mounted `drive`; here the module is the hand-in's."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        parts = fullname.split(".")
        if parts[0] not in _mount_names() or (len(parts) > 1 and parts[1] != "MyDrive"):
            return None
        if len(parts) <= 2:
            return made_spec(fullname, lambda module: module)
        spec = _drive_spec(fullname, parts[2:])
        if spec is not None:
            mark("colab: import drive.MyDrive...")
            return spec
        return made_spec(fullname, _unfound_folder)


def _path_hook(entry: str):
    """`sys.path.append('/content/drive/MyDrive/ERA/S5')`: the entry is the hand-in folder it names."""
    mapped = _colab_dir(entry)
    if mapped is None:
        raise ImportError("not a Colab path")  # the next hook reads it
    mark("colab: sys.path /content/...")
    return importlib.machinery.FileFinder(
        str(mapped), (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES))


def drive_imports() -> None:
    """Imports through Drive: `drive.MyDrive....` modules, and sys.path entries below /content."""
    _place("root")
    if not any(isinstance(f, _DriveFinder) for f in sys.meta_path):
        sys.meta_path.append(_DriveFinder())
    if _path_hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _path_hook)

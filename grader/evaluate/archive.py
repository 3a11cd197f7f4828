"""What a model file holds, read before anything loads it: no unpickling, no import, no code run.

A `.pt2` archive (torch.export.save) is a zip. As torch 2.14 writes an exported CNN, it holds JSON (the graph,
the weight and constant tables), raw tensor bytes, and one pickle: the sample inputs, a torch.save archive of
plain tensors. torch's loader also unpickles weights and constants marked `use_pickle`, custom and opaque
objects (`pickle.loads`), legacy `.pt` members, compiled AOTInductor libraries; it evaluates every symbolic
shape with `sympy.sympify` (Python's `eval`), `exec`s the program's `guards_code`, and calls any callable a
node names (`torch.os.system` is one). Each of these runs code from the file. `check_program` refuses all of
them and gives back an archive rebuilt from the members it read, so the loader sees exactly what was checked.

A `.keras` file is a zip with a JSON config: `check_keras` refuses Lambda layers (Python code), objects whose
module is not Keras's (imported by name), and classes registered by the student.

Pure (standard library only, so the grading environment's Python can use it for Keras files).
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

MAX_UNPACKED_BYTES = 1 << 30  # what an archive's members may add up to, unpacked

_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
              "models/model.json", "data/weights/model_weights_config.json",
              "data/constants/model_constants_config.json", "data/sample_inputs/model.pt"}
_PT2_TENSOR = re.compile(r"data/(weights/weight|constants/tensor)_\d+")
_TORCH_SAVE = re.compile(r"(data\.pkl|\.format_version|\.storage_alignment|byteorder|version|\.data/serialization_id"
                         r"|data/\d+)")

# the globals torch.save writes for plain tensors in tuples, lists and dicts
_TENSOR_GLOBALS = {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}
_STORAGE = re.compile(r"(Float|Double|Half|BFloat16|Long|Int|Short|Char|Byte|Bool)Storage")

# aten's operators by name; Python's double-underscore names only where aten really has them (the bitwise
# operators, which grader.arch.graph_ops then reports as what a CNN does not use), never `__class__` and the like
_ATEN = re.compile(r"torch\.ops\.aten\.((?!__)[A-Za-z_][A-Za-z0-9_]*|__i?(and|or|xor|lshift|rshift)__)"
                   r"\.(?!__)[A-Za-z_][A-Za-z0-9_]*")
_TARGETS = {"torch.ops.higher_order.wrap_with_set_grad_enabled", "torch.ops.higher_order.wrap_with_autocast",
            "math.trunc", *(f"_operator.{name}" for name in (
                "getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "neg", "pos", "eq", "ne",
                "le", "ge", "lt", "gt", "and_", "or_", "lshift", "rshift")),
            *(f"torch.sym_{name}" for name in ("not", "int", "float", "ite", "max", "min", "sqrt"))}

# symbolic shapes as torch writes them: sympy's srepr ("Symbol('s77', positive=True, integer=True)") or infix
_EXPR_TOKEN = re.compile(r"\s+|\d+(\.\d+)?(e[-+]?\d+)?|'[A-Za-z_][A-Za-z0-9_]*'|[A-Za-z_][A-Za-z0-9_]*"
                         r"|\*\*|//|[-+*/%(),=<>!]")
_EXPR_NAMES = {"Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs", "Eq", "Ne",
               "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "oo", "zoo", "nan",
               "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
               "commutative", "even", "odd", "rational", "infinite", "extended_real",
               "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
               "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
               "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
               "ToFloat"}
_SYMBOL = re.compile(r"[a-z]+\d+")  # s77, u0: a shape's symbol (no Python builtin ends in a digit)
# the containers a forward's inputs and outputs are flattened from (pytree specs); torch's loader imports the module
# an `__enum__` entry names, and a defaultdict's factory's module
_SPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}

_KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
_KERAS_MARKERS = {"__keras_tensor__", "__tuple__"}  # Keras's own encodings, rebuilt without an import
_KERAS_CODE = {"Lambda", "__lambda__", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}  # layers that carry code


@dataclass(frozen=True)
class Refusal:
    """One thing in a model file that loading it would have to run or unpickle."""

    member: str  # where in the archive (a zip member; for JSON, the member and the path inside it)
    found: str  # what is there

    def __str__(self) -> str:
        return f"{self.member}: {self.found}"


@dataclass(frozen=True)
class Checked:
    """A model file read without loading it: what is refused, and (nothing refused) the archive to load."""

    refusals: tuple[Refusal, ...]
    archive: Optional[bytes] = None  # rebuilt from the checked members alone

    @property
    def ok(self) -> bool:
        return not self.refusals


class RefusedModel(ValueError):
    """Raised by the clean evaluation for a model file it will not load; the message says what and what to do."""

    def __init__(self, file: str, refusals: tuple[Refusal, ...], advice: str):
        more = f"; and {len(refusals) - 5} more" if len(refusals) > 5 else ""
        shown = "; ".join(str(r) for r in refusals[:5]) + more
        super().__init__(f"{file} was not loaded: it holds more than layers and plain tensors, and loading it would "
                         f"run, unpickle or import what it names: {shown}. {advice}")


PT2_ADVICE = ("Save the model with torch.export.save(torch.export.export(model, (torch.zeros(2, 1, 28, 28),)), "
              "'model.pt2'), with plain tensors as weights, buffers and example inputs and no custom objects")
KERAS_ADVICE = ("Build the model from Keras's own layers only (no Lambda layer, no layer or function of your own): "
                "write the arithmetic with built-in layers such as Rescaling, Conv2D, Dense, Activation")


def check_program(data: bytes) -> Checked:
    """A torch.export `.pt2` archive: every member, the sample inputs' pickle opcodes (none run), and every
    string in the program that torch's loader would evaluate or resolve to a callable."""
    members, refusals = _members(data, "model.pt2")
    if members is None:
        return Checked(tuple(refusals))
    for name in members:
        if name not in _PT2_FIXED and not _PT2_TENSOR.fullmatch(name):
            refusals.append(Refusal(name, _unexpected_member(name)))
    for config in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        refusals += _payload_refusals(config, members)
    if "data/sample_inputs/model.pt" in members:
        inputs, rebuilt = _torch_save("data/sample_inputs/model.pt", members["data/sample_inputs/model.pt"])
        refusals += inputs
        members["data/sample_inputs/model.pt"] = rebuilt or b""
    if "models/model.json" not in members:
        refusals.append(Refusal("models/model.json", "missing: this is not an archive torch.export.save wrote"))
    else:
        refusals += _program_refusals("models/model.json", members["models/model.json"])
    if refusals:
        return Checked(tuple(refusals))
    return Checked((), _rebuilt(members, "model"))


def check_keras(data: bytes) -> Checked:
    """A `.keras` file: its members, and every object in its config (layers, initializers, compile settings)."""
    members, refusals = _members(data, "model.keras", rooted=False)
    if members is None:
        return Checked(tuple(refusals))
    refusals += [Refusal(name, "not a member Keras writes for a model (config.json, metadata.json, "
                               "model.weights.h5)") for name in members if name not in _KERAS_MEMBERS]
    try:
        config = json.loads(members.get("config.json", b""))
    except ValueError as exc:
        return Checked(tuple(refusals) + (Refusal("config.json", f"not JSON ({exc})"),))
    for path, obj in _objects(config, "config.json"):
        name, module, registered = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
        inner = obj.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            path = f"{path} (`{inner['name'][:80]}`)"
        if name == "__lambda__":
            refusals.append(Refusal(path, "the Python bytecode of a Lambda layer's function"))
        elif name in _KERAS_CODE:
            refusals.append(Refusal(path, f"a {name} layer, which carries Python code"))
        elif module is None and name not in _KERAS_MARKERS:
            refusals.append(Refusal(path, f"`{name}` has no Keras module: a class or function of the notebook's own"))
        elif module is not None and not (isinstance(module, str) and module.split(".")[0] == "keras"):
            refusals.append(Refusal(path, f"`{name}` comes from module `{module}`, not from Keras"))
        elif registered not in (None, name):
            refusals.append(Refusal(path, f"`{name}` is registered as `{registered}`: a custom object"))
    return Checked(tuple(refusals))


def _members(data: bytes, kind: str, rooted: bool = True) -> tuple[Optional[dict[str, bytes]], list[Refusal]]:
    """Every member's bytes by name (for a torch archive, the name under its one top folder), or why not."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return None, [Refusal(kind, f"not a zip archive ({exc})")]
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        return None, [Refusal(twice[0], "stored twice: which copy a loader reads depends on the loader")]
    if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
        return None, [Refusal(kind, f"unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")]
    roots = {name.split("/", 1)[0] for name in names}
    if rooted and (len(roots) != 1 or any("/" not in name for name in names)):
        return None, [Refusal(kind, f"members under {len(roots)} top folders; torch.export.save writes one")]
    members = {}
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename.split("/", 1)[1] if rooted else info.filename
        try:
            members[name] = archive.read(info)
        except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as exc:
            return None, [Refusal(name, f"cannot be read ({exc})")]
    return members, []


def _unexpected_member(name: str) -> str:
    if name.startswith("data/aotinductor/"):
        return "an AOTInductor build: compiled code the loader would run"
    if name.startswith("data/constants/custom_obj_") or name.startswith("data/constants/opaque_obj_"):
        return "a pickled object (a custom or opaque constant), not a tensor"
    if name.endswith(".pt") or name.endswith(".pkl"):
        return "a pickle in the legacy layout"
    return "not a member torch.export.save writes for a program of tensors"


def _payload_refusals(config: str, members: dict[str, bytes]) -> list[Refusal]:
    """The weight or constant table: every entry raw tensor bytes (use_pickle false) in a member that exists."""
    if config not in members:
        return [Refusal(config, "missing: this is not an archive torch.export.save wrote")]
    try:
        entries = json.loads(members[config])["config"]
        items = list(entries.items())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return [Refusal(config, f"not the table torch.export.save writes ({exc.__class__.__name__}: {exc})")]
    folder = config.rsplit("/", 1)[0]
    out = []
    for fqn, meta in items:
        path = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(path, str) or not _PT2_TENSOR.fullmatch(f"{folder}/{path}"):
            out.append(Refusal(f"{config}: `{fqn}`", f"stored as {path!r}: not a tensor (a pickled object)"))
        elif meta.get("use_pickle") is not False:
            out.append(Refusal(f"{config}: `{fqn}`",
                               "pickled (a tensor subclass or another object), not raw tensor bytes"))
        elif f"{folder}/{path}" not in members:
            out.append(Refusal(f"{config}: `{fqn}`", f"its data {folder}/{path} is missing"))
    return out


def _torch_save(member: str, data: bytes) -> tuple[list[Refusal], Optional[bytes]]:
    """A torch.save archive (the sample inputs): plain tensors only, read from the pickle's opcodes. What is
    refused, and (nothing refused) the archive rebuilt from the members read here."""
    inner, refusals = _members(data, member)
    if inner is None:
        return [Refusal(member, r.found) for r in refusals], None
    out = [Refusal(f"{member}/{name}", "not a member torch.save writes") for name in inner
           if not _TORCH_SAVE.fullmatch(name)]
    if "data.pkl" not in inner:
        return out + [Refusal(member, "no data.pkl: not a torch.save archive")], None
    out += [Refusal(f"{member}/data.pkl", found) for found in pickle_globals_refused(inner["data.pkl"])]
    return out, None if out else _rebuilt(inner, "archive")


def pickle_globals_refused(data: bytes) -> list[str]:
    """What in a pickle is more than plain tensors in tuples, lists and dicts: each global it would import
    (other than torch's tensor rebuild and storage types), each opcode that names one indirectly. Read with
    pickletools.genops: nothing is imported or called."""
    out: list[str] = []
    strings: list[str] = []  # the last strings pushed, which STACK_GLOBAL takes as module and name
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                out += _global_refused(module, name)
            elif opcode.name == "STACK_GLOBAL":
                out += _global_refused(*strings[-2:]) if len(strings) >= 2 else ["a global the scan cannot name"]
            elif opcode.name in ("EXT1", "EXT2", "EXT4"):
                out.append(f"a global from the copyreg extension registry (code {arg})")
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(str(arg))
            elif opcode.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                strings.clear()
    except Exception as exc:  # genops reads arbitrary bytes; any failure means the pickle is not torch's
        out.append(f"not a pickle torch.save writes ({exc.__class__.__name__}: {exc})")
    return list(dict.fromkeys(out))


def _global_refused(module: str, name: str) -> list[str]:
    if (module, name) in _TENSOR_GLOBALS or (module == "torch" and _STORAGE.fullmatch(name)):
        return []
    return [f"a pickle that imports `{module}.{name}` (only tensors may be pickled)"]


def _program_refusals(member: str, data: bytes) -> list[Refusal]:
    """The serialized program: no guard code, every operator torch's own or shape arithmetic, every symbolic
    shape plain arithmetic on shape symbols."""
    try:
        program = json.loads(data)
    except ValueError as exc:
        return [Refusal(member, f"not JSON ({exc})")]
    if not isinstance(program, dict):
        return [Refusal(member, "not the program torch.export.save writes")]
    out = []
    if program.get("guards_code"):
        out.append(Refusal(f"{member}: guards_code", "Python source that the loader would run as guards"))
    for path, key, value in _strings(program, member):
        if key in ("target", "as_operator") and not (isinstance(value, str) and
                                                     (_ATEN.fullmatch(value) or value in _TARGETS)):
            out.append(Refusal(path, f"calls `{str(value)[:120]}`, which is not an operator of torch's (aten)"))
        elif key in ("in_spec", "out_spec") and not _plain_spec(value):
            out.append(Refusal(path, f"a spec of the inputs or outputs `{str(value)[:120]}` that names modules or "
                                     "types other than tuples, lists and dicts (the loader imports them)"))
        elif key == "expr_str" and not _plain_expression(value):
            out.append(Refusal(path, f"a symbolic shape `{str(value)[:120]}` that is not arithmetic on shape "
                                     "symbols (the loader evaluates it as Python)"))
    return out


def _plain_expression(text: Any) -> bool:
    if not isinstance(text, str) or len(text) > 2000:
        return False
    at = 0
    while at < len(text):
        token = _EXPR_TOKEN.match(text, at)
        if token is None:
            return False
        word = token.group()
        if (word[0].isalpha() or word[0] == "_") and word not in _EXPR_NAMES and not _SYMBOL.fullmatch(word):
            return False
        at = token.end()
    return True


def _plain_spec(text: Any) -> bool:
    """A pytree spec (JSON, its contexts JSON again) of tuples, lists and dicts, with no `__enum__` to import."""
    if not isinstance(text, str):
        return False
    try:
        stack = [json.loads(text)]
    except ValueError:
        return False
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "__enum__" in node or ("type" in node and node["type"] not in _SPEC_TYPES):
                return False
            context = node.get("context")
            try:
                stack.append(json.loads(context) if isinstance(context, str) else context)
            except ValueError:
                return False
            stack.extend(value for key, value in node.items() if key != "context")
        elif not isinstance(node, (str, int, float, bool, type(None))):
            return False
    return True


def _strings(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every key of every object in a JSON document whose value is not an object or list,
    in document order."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(child, (dict, list)):
                    yield f"{where}.{key}", key, child
            stack.extend(reversed([(child, f"{where}.{key}") for key, child in node.items()
                                   if isinstance(child, (dict, list))]))
        elif isinstance(node, list):
            stack.extend(reversed([(child, f"{where}[{i}]") for i, child in enumerate(node)]))


def _objects(value: Any, path: str) -> Iterator[tuple[str, dict]]:
    """Every JSON object with a `class_name` (a serialized Keras object), with where it is, in document order."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                yield where, node
            stack.extend(reversed([(child, f"{where}.{key}") for key, child in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([(child, f"{where}[{i}]") for i, child in enumerate(node)]))


def _rebuilt(members: dict[str, bytes], root: str) -> bytes:
    """A fresh zip of the checked members under one top folder, stored: what torch's loader will read."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{root}/{name}", data)
    return out.getvalue()

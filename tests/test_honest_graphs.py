"""No false alarms (issue 20): every honest model we have, exported the way the harness exports a student's
(and the bundled examples' model.pt2 files as they are), has no unexpected operator, and its learned numbers
are its trainable parameters, with every batch-norm buffer apart as statistics.

The models: the reference networks (reference_models/nets.py), the model modules of tests/fixtures/models,
each network class of the fixture and example notebooks that maps 1x28x28 to ten scores (the harness's own
check before it exports), and examples/submissions/*/model.pt2. Notebook classes are built from the
notebook's own class and function definitions (its torch imports alone, nothing else of it runs)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import reference_models.nets as reference_nets
from grader.arch.graph_ops import unexpected_ops
from grader.arch.stored_state import stored_state
from tests.exported import exported

ROOT = Path(__file__).resolve().parents[1]
# Notebooks whose network is hostile by design (issue 16's memorised test sets, a model that reads a planted
# label), each with a test of its own; everything else under these folders is an honest model.
HOSTILE = {"lookup_table_in_buffers", "lookup_table_in_frozen_parameters", "lookup_table_in_lifted_constants",
           "soft_lookup_in_buffers", "lookup_table_behind_torchscript", "lookup_refuses_export",
           "label_marking_transform"}
NOTEBOOKS = sorted(p for folder in ("tests/fixtures", "examples", "reference_models")
                   for p in (ROOT / folder).rglob("*.ipynb") if p.stem not in HOSTILE)
SUBMITTED = sorted((ROOT / "examples" / "submissions").glob("*/model.pt2"))


def _definitions(path: Path) -> dict[str, type]:
    """The nn.Module classes a notebook defines, from its class and def statements and its torch imports."""
    try:
        cells = nbformat.read(str(path), as_version=4).cells
    except Exception:  # the fixtures of unreadable notebooks
        return {}
    kept = []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        kept += [ast.get_source_segment(source, node) for node in tree.body if isinstance(node, (
            ast.ClassDef, ast.FunctionDef)) or (isinstance(node, (ast.Import, ast.ImportFrom)) and all(
                (getattr(node, "module", None) or alias.name).split(".")[0] == "torch" for alias in node.names))]
    namespace = {"torch": torch, "nn": nn, "F": F}
    exec(compile("\n".join(kept), str(path), "exec"), namespace)
    return {name: value for name, value in namespace.items()
            if inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == "builtins"}


def _classifier(cls: type) -> nn.Module | None:
    """An instance, when the class builds without arguments and maps images to ten scores (the harness's check)."""
    try:
        module = cls().eval()
        with torch.no_grad():
            out = module(torch.zeros(8, 1, 28, 28))
    except Exception:
        return None
    return module if isinstance(out, torch.Tensor) and tuple(out.shape) == (8, 10) else None


def _honest_modules() -> list[tuple[str, nn.Module]]:
    found = [(f"reference_models/nets.py:{name}", cls) for name, cls in vars(reference_nets).items()
             if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls.__module__ == reference_nets.__name__]
    for path in sorted((ROOT / "tests" / "fixtures" / "models").glob("*.py")):
        module = importlib.import_module(f"tests.fixtures.models.{path.stem}")
        found += [(f"tests/fixtures/models/{path.name}:{name}", cls) for name, cls in vars(module).items()
                  if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls.__module__ == module.__name__]
    for path in NOTEBOOKS:
        found += [(f"{path.relative_to(ROOT)}:{name}", cls) for name, cls in _definitions(path).items()]
    return [(name, module) for name, cls in found if (module := _classifier(cls)) is not None]


MODULES = _honest_modules()


def test_the_honest_models_are_all_found():
    names = {name.rsplit(":", 1)[0] for name, _ in MODULES}
    assert len(MODULES) >= 45 and len(SUBMITTED) == 6, sorted(names)
    assert {"reference_models/nets.py", "tests/fixtures/models/course_net.py", "reference_models/s5.ipynb",
            "examples/source/ada_good.ipynb", "tests/fixtures/exec/realstyle_train_subset.ipynb"} <= names


@pytest.mark.parametrize("name, module", MODULES, ids=[name for name, _ in MODULES])
def test_an_honest_model_has_no_unexpected_operator_and_learns_its_trainable_parameters(name, module):
    program = exported(module)
    stored = stored_state(program)
    assert unexpected_ops(program) == []
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert stored.learned == stored.trainable == trainable and stored.literals == 0 and stored.flagged == []
    assert stored.bn_stats == sum(b.numel() for b in module.buffers())  # running mean, variance, counter: all BN's


@pytest.mark.parametrize("path", SUBMITTED, ids=[p.parent.name.split("_")[0] for p in SUBMITTED])
def test_a_bundled_model_file_has_no_unexpected_operator(path):
    program = torch.export.load(path)  # our own file: examples/make_examples.py wrote it through the harness
    stored = stored_state(program)
    assert unexpected_ops(program) == []
    trainable = sum(program.state_dict[n].numel() for n in program.graph_signature.parameters)
    buffers = sum(program.state_dict[n].numel() for n in program.graph_signature.buffers)
    assert stored.learned == stored.trainable == trainable and stored.bn_stats == buffers and stored.flagged == []


@pytest.mark.parametrize("cls", [reference_nets.S4Net, reference_nets.SepNet], ids=["S4Net", "SepNet"])
@pytest.mark.parametrize("form", ["train mode", "core ATen", "core ATen, train mode"])
def test_a_handed_in_export_in_another_form_is_read_the_same(cls, form):
    """A student's own model.pt2 (evaluate mode) may be exported in train mode, or decomposed to core ATen
    (`run_decompositions`): batch norm, pooling and softmax then have other names, and the same verdict."""
    module = cls().train("train" in form)
    batch = torch.export.Dim("batch", min=2, max=100000)
    program = torch.export.export(module, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},), strict=False)
    program = program.run_decompositions() if "core" in form else program
    stored = stored_state(program)
    assert unexpected_ops(program) == []
    assert stored.learned == stored.trainable == sum(p.numel() for p in module.parameters())
    assert stored.bn_stats == sum(b.numel() for b in module.buffers())

"""Code in the model file (issue 20): a `.pt2` archive carries pickles, guard code, symbolic shapes and call
targets that torch's loader would run, and a `.keras` file Lambda layers and custom objects. The clean evaluation
reads the file first (grader.evaluate.archive) and refuses them: the payload never runs, the verdict is
`bad_model` with what was found and where, no accuracy is credited; an honest export loads and predicts as before.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from grader.api import grade_submission, load_rubric, options_for
from grader.evaluate import clean
from grader.evaluate.archive import RefusedModel, check_keras, check_program, pickle_globals_refused
from grader.evaluate.clean import measure
from grader.evaluate.eval_jobs import EvalJob
from tests.fixtures.models.hostile_pt2 import ATTACKS, LIVE, honest, hostile, members_of, rezip

IMAGES = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
COURSE = {"model_file": "model.pt2", "images_file": "", "out_dir": "", "scale": 1 / 0.3081, "shift": -0.1307 / 0.3081}
# what each attack's refusal names: the member, and what is there
NAMED = {"sample_inputs": ("data/sample_inputs/model.pt/data.pkl", "imports `__builtin__.eval`"),
         "pickled_weight": ("data/weights/model_weights_config.json", "pickled"),
         "opaque_constant": ("data/constants/opaque_obj_0", "a pickled object"),
         "guards_code": ("models/model.json: guards_code", "Python source"),
         "symbolic_shape": ("expr_str", "is not arithmetic on shape symbols"),
         "node_target": ("nodes[0].target", "calls `torch.os.system`"),
         "tree_spec": ("signature.in_spec", "names modules or types other than tuples, lists and dicts")}


@pytest.fixture(scope="module")
def base() -> bytes:
    return honest()


@pytest.mark.parametrize("name", LIVE)
def test_each_payload_runs_in_torchs_own_loader(name, base, tmp_path):
    """The fixtures are live: torch.export.load, .module() and one forward pass run the payload."""
    marker = tmp_path / "ran"
    data = hostile(name, str(marker), base)
    try:
        torch.export.load(io.BytesIO(data)).module()(torch.zeros(2, 1, 28, 28))
    except Exception:  # noqa: BLE001 - what follows the payload may fail: the payload has run by then
        pass
    assert marker.read_text() == "ran"


def test_a_tree_spec_makes_torchs_loader_import_a_module_and_not_the_clean_evaluation(base, tmp_path):
    data = hostile("tree_spec", str(tmp_path / "ran"), base)
    sys.modules.pop("this", None)
    with pytest.raises(RefusedModel):
        measure(EvalJob(**COURSE), images=IMAGES, model_bytes=data)
    assert "this" not in sys.modules
    torch.export.load(io.BytesIO(data))  # loads: `this.d["a"]` is a dict key like any other
    assert "this" in sys.modules


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_code_in_the_model_file_never_runs_in_the_clean_evaluation(name, base, tmp_path):
    marker = tmp_path / "ran"
    data = hostile(name, str(marker), base)
    with pytest.raises(RefusedModel) as refused:
        measure(EvalJob(**COURSE), images=IMAGES, model_bytes=data)
    assert not marker.exists()
    member, found = NAMED[name]
    message = str(refused.value)
    assert message.startswith("model.pt2 was not loaded") and member in message and found in message, message
    assert "torch.export.save(torch.export.export(model" in message  # what to do


def test_an_honest_export_loads_and_predicts_exactly_as_torch_loads_it(base, tmp_path):
    assert check_program(base).ok
    (tmp_path / "model.pt2").write_bytes(base)
    measured = measure(EvalJob(**{**COURSE, "model_file": str(tmp_path / "model.pt2")}), images=IMAGES)
    inputs = torch.from_numpy(IMAGES.astype(np.float32) / 255.0).unsqueeze(1) * COURSE["scale"] + COURSE["shift"]
    with torch.no_grad():
        expected = torch.export.load(io.BytesIO(base)).module()(inputs).argmax(1).numpy()
    assert (measured.predictions == expected).all() and measured.record.model["params"]["trainable"] == 13_808
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # held only while the clean evaluation loads


def test_the_bundled_example_models_are_not_refused():
    examples = sorted((Path(__file__).resolve().parents[1] / "examples" / "submissions").glob("*/model.pt2"))
    assert len(examples) == 6 and all(check_program(path.read_bytes()).ok for path in examples)


def test_the_cold_path_writes_the_refusal_as_the_evaluations_error(base, tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "model.pt2").write_bytes(hostile("sample_inputs", str(marker), base))
    np.save(tmp_path / "images.npy", IMAGES)
    job = {**COURSE, "model_file": str(tmp_path / "model.pt2"), "images_file": str(tmp_path / "images.npy"),
           "out_dir": str(tmp_path)}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert clean.main([str(tmp_path / "job.json")]) == 0
    record = json.loads((tmp_path / "eval.json").read_text())
    assert (record["error"].startswith("RefusedModel: model.pt2 was not loaded")
            and "__builtin__.eval" in record["error"])
    assert not marker.exists() and not (tmp_path / "predictions.npy").exists()


@pytest.mark.parametrize("extra, found", [
    ("data/aotinductor/model/model.so", "an AOTInductor build: compiled code the loader would run"),
    ("data/constants/custom_obj_0", "a pickled object (a custom or opaque constant), not a tensor"),
    ("data/weights/model.pt", "a pickle in the legacy layout"),
    ("extra/notes.txt", "not a member torch.export.save writes for a program of tensors"),
])
def test_members_torch_export_save_does_not_write_for_a_program_of_tensors_are_refused(extra, found, base):
    members = members_of(base)
    members[extra] = b"\x7fELF"
    refusals = check_program(rezip(members)).refusals
    assert [(r.member, r.found) for r in refusals] == [(extra, found)]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_member_stored_twice_is_refused_whichever_copy_a_loader_would_read(base):
    members = members_of(base)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"model/{name}", data)
        archive.writestr("model/data/sample_inputs/model.pt", b"another copy")
    refusals = check_program(out.getvalue()).refusals
    assert [str(r) for r in refusals] == ["model/data/sample_inputs/model.pt: stored twice: which copy a loader "
                                          "reads depends on the loader"]


def test_members_under_a_second_top_folder_are_refused(base):
    refusals = check_program(rezip(members_of(base), roots=("model", "other"))).refusals
    assert refusals[0].found == "members under 2 top folders; torch.export.save writes one"
    assert check_program(b"not a zip").refusals[0].found.startswith("not a zip archive")


@pytest.mark.parametrize("target, refused", [
    ("torch.ops.aten.__and__.Tensor", False),  # `&` on tensors: aten's own operator (graph_ops reports it later)
    ("torch.ops.aten.__irshift__.Scalar", False),
    ("torch.ops.aten.__class__.__init__", True),  # attribute walks out of aten's namespace
    ("torch.ops.aten.add.__globals__", True),
    ("torch.ops.aten.__getattr__.default", True),
])
def test_a_call_target_is_an_aten_operator_by_name_and_no_other_double_underscore(target, refused, base):
    def change(members):
        program = json.loads(members["models/model.json"])
        node = next(n for n in program["graph_module"]["graph"]["nodes"] if n["target"].startswith("torch.ops.aten."))
        node["target"] = target
        members["models/model.json"] = json.dumps(program).encode()

    members = members_of(base)
    change(members)
    found = [r.found for r in check_program(rezip(members)).refusals]
    assert any(f"calls `{target}`" in f for f in found) == refused, found


def test_a_pickle_is_read_opcode_by_opcode_and_nothing_in_it_runs(tmp_path):
    marker = tmp_path / "ran"
    protocol_4 = pickle.dumps(Path(marker).touch, protocol=4)  # STACK_GLOBAL, names pushed as strings
    assert pickle_globals_refused(protocol_4) == ["a pickle that imports `builtins.getattr` (only tensors may be "
                                                  "pickled)", "a pickle that imports `pathlib.PosixPath` (only "
                                                  "tensors may be pickled)"]
    tensors = io.BytesIO()
    torch.save({"x": torch.zeros(3), "y": [torch.ones(2, dtype=torch.int64)]}, tensors)
    assert pickle_globals_refused(zipfile.ZipFile(tensors).read("archive/data.pkl")) == []
    assert pickle_globals_refused(b"\x80\x02garbage")[0].startswith("not a pickle torch.save writes")
    assert not marker.exists()


def _keras(layers: list[dict], **top) -> bytes:
    """A `.keras` file as Keras 3 writes a Sequential model (its config.json; the weights do not matter here)."""
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
              "config": {"name": "sequential", "layers": [
                  {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                   "config": {"batch_shape": [None, 28, 28, 1]}}, *layers,
                  {"module": "keras.layers", "class_name": "Dense", "registered_name": None, "config": {"units": 10},
                   "build_config": {"input_shape": [None, 784]}}]}, **top}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.13.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")
    return out.getvalue()


FLATTEN = {"module": "keras.layers", "class_name": "Flatten", "registered_name": None, "config": {}}
LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "config": {
    "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}}
CUSTOM = {"module": None, "class_name": "Twice", "registered_name": "student>Twice", "config": {}}


@pytest.mark.parametrize("layer, found", [
    (LAMBDA, ["config.json.config.layers[1]: a Lambda layer, which carries Python code",
              "config.json.config.layers[1].config.function: the Python bytecode of a Lambda layer's function"]),
    (CUSTOM, ["config.json.config.layers[1]: `Twice` has no Keras module: a class or function of the notebook's own"]),
    ({**FLATTEN, "module": "os", "class_name": "system"},
     ["config.json.config.layers[1]: `system` comes from module `os`, not from Keras"]),
    ({**FLATTEN, "registered_name": "student>Flatten"},
     ["config.json.config.layers[1]: `Flatten` is registered as `student>Flatten`: a custom object"]),
])
def test_a_keras_config_with_code_or_custom_objects_is_refused_before_keras_reads_it(layer, found):
    assert [str(r) for r in check_keras(_keras([layer, FLATTEN])).refusals] == found


def test_a_keras_config_of_keras_layers_is_not_refused():
    assert check_keras(_keras([FLATTEN])).ok
    optimizer = {"compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                                                  "registered_name": None, "config": {}}}}
    assert check_keras(_keras([FLATTEN], **optimizer)).ok


# End to end: a model.pt2 handed in for --mode evaluate, and a notebook whose kernel plants the payload in the
# archive the harness saves. Each must end bad_model, not passed, no accuracy, the message naming what was refused.

def _not_credited(result, *named: str) -> None:
    facts, sheet = result.facts, result.sheet
    assert facts.verdict.kind == "bad_model", facts.verdict.message
    assert facts.eval.accuracy is None and sheet.passed is False
    assert {i.id: i for i in sheet.items}["accuracy"].points == 0
    assert "was not loaded" in facts.verdict.message and all(n in facts.verdict.message for n in named), \
        facts.verdict.message


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("name, warm", [("sample_inputs", "1"), ("guards_code", "0"), ("symbolic_shape", "1")])
def test_a_handed_in_model_pt2_with_code_in_it_is_bad_model(name, warm, base, tmp_path, real_mnist_dir, monkeypatch):
    monkeypatch.setenv("GRADER_WARM_EVAL", warm)
    model = tmp_path / "model.pt2"
    model.write_bytes(hostile(name, "/tmp/ran", base))
    rubric = load_rubric("mnist-s3")
    _not_credited(grade_submission(model, rubric, options_for(rubric, data=str(real_mnist_dir))), *NAMED[name])


PLANTS_A_PAYLOAD = '''# the harness saves the model with torch.export.save: this kernel swaps the saved sample
# inputs for a payload
import io, zipfile, torch, torch.nn as nn, torch.nn.functional as F

class Payload:
    def __reduce__(self):  # in the clean process it would run here, and could replace the predictions
        return (eval, ("__import__('torch').zeros(2, 1, 28, 28)",))

_save = torch.export.save
def save(program, f, **kwargs):
    _save(program, f, **kwargs)
    archive = zipfile.ZipFile(f)
    members = {i.filename: archive.read(i) for i in archive.infolist()}
    payload = io.BytesIO()
    torch.save(((Payload(),), {}), payload)
    members[[n for n in members if n.endswith("data/sample_inputs/model.pt")][0]] = payload.getvalue()
    with zipfile.ZipFile(f, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
torch.export.save = save

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3)
        self.c2 = nn.Conv2d(8, 10, 3)
    def forward(self, x):
        return F.log_softmax(F.adaptive_avg_pool2d(self.c2(F.relu(self.c1(x))), 1).flatten(1), -1)
model = Net()'''


@pytest.mark.usefixtures("bwrap")
def test_a_notebook_whose_kernel_plants_a_payload_in_the_saved_archive_is_bad_model(tmp_path, real_mnist_dir):
    path = tmp_path / "plants_a_payload.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(PLANTS_A_PAYLOAD)]), str(path))
    rubric = load_rubric("mnist-s3")
    result = grade_submission(path, rubric, options_for(rubric, data=str(real_mnist_dir)))
    _not_credited(result, "data/sample_inputs/model.pt/data.pkl", "__builtin__.eval")

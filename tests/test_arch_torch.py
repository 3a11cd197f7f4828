"""Reading real torch models into layer tables (grader.arch.torch_graph).

Fixture models live in tests/fixtures/models/; each class there is built with no
arguments on a 1x28x28 input, as `grade arch file.py:Class` does.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from grader.arch import torch_graph
from grader.arch.spec import parse_line
from grader.arch.structure import structure_facts
from grader.arch.torch_graph import parse_input_chw, table_from_module, table_from_program, table_from_target
from grader.errors import GraderError

MODELS = Path(__file__).parent / "fixtures" / "models"
ALL_FIXTURES = [
    "course_net.py:Net", "functional.py:MeanHead", "functional.py:AvgPoolSizeHead",
    "gap_variants.py:AdaptiveGap", "gap_variants.py:AvgPoolWhole", "gap_variants.py:AvgPoolPartial",
    "gap_variants.py:AvgPoolSize", "gap_variants.py:MeanLastDims",
    "branching.py:Residual", "branching.py:Concat", "with_linear.py:FcHead",
]


def target(name: str) -> str:
    return f"{MODELS / name}"


@functools.cache
def table(name: str):
    return table_from_target(target(name), "1x28x28")


def facts(name: str):
    t = table(name)
    return structure_facts(t, trainable=t.trainable, total=t.total, buffers=t.module_buffers)


def geometry(t) -> list[tuple]:
    """What must agree between two readings of one network, row by row."""
    return [(r.kind, r.label, str(r.in_shape), str(r.out_shape), r.params, r.weights, r.buffers, r.rf, r.jump, r.start)
            for r in t.rows]


def build(spec: str) -> nn.Module:
    """A fresh instance of a fixture class, for the tests that need the module itself."""
    path, _, name = spec.partition(":")
    return getattr(importlib.import_module(f"tests.fixtures.models.{path[:-3]}"), name)()


# ---------------------------------------------------------------- a model and its spec


def test_course_net_gives_the_same_table_as_its_one_line_spec():
    from tests.fixtures.models import course_net

    model = table("course_net.py:Net")
    spec = parse_line(course_net.SPEC).table()
    assert geometry(model) == geometry(spec)
    assert model.params == spec.params == 13_808
    assert model.trainable == model.total == 13_808
    assert model.module_buffers == model.buffers == 230  # 6 batch norms: mean, var (2C) + num_batches_tracked
    assert model.traced_with == "export" and model.notes == ()


def test_course_net_rows_carry_module_names_sizes_and_receptive_fields():
    rows = table("course_net.py:Net").rows
    assert [r.name for r in rows[:5]] == ["convblock1.0", "convblock1.1", "convblock1.2", "convblock1.3",
                                          "convblock2.0"]
    by_label = [(r.label, str(r.out_shape), r.rf[0], r.jump[0])
                for r in rows if r.kind in ("conv", "maxpool", "avgpool")]
    assert by_label == [
        ("conv3x3 16", "26x26x16", 3, 1), ("conv3x3 32", "24x24x32", 5, 1), ("conv1x1 10", "24x24x10", 5, 1),
        ("maxpool 2x2", "12x12x10", 6, 2), ("conv3x3 16", "10x10x16", 10, 2), ("conv3x3 16", "8x8x16", 14, 2),
        ("conv3x3 16", "6x6x16", 18, 2), ("conv3x3 16 p1", "6x6x16", 22, 2), ("avgpool 6x6", "1x1x16", 32, 12),
        ("conv1x1 10", "1x1x10", 32, 12),
    ]
    assert [r.label for r in rows[-2:]] == ["flatten", "log_softmax"]  # x.view(-1, 10) after the 1x1x10 map


def test_course_net_structure_facts():
    f = facts("course_net.py:Net")
    assert f.params.trainable == 13_808
    assert (f.layers.conv, f.layers.conv1x1, f.layers.maxpool, f.layers.batchnorm, f.layers.dropout,
            f.layers.linear) == (8, 2, 1, 6, 6, 0)
    assert f.activations == ["log_softmax", "relu"]
    assert f.gap is True and f.transitions == 1 and f.layers_after_last_maxpool == 5
    assert (f.rf.final, f.rf.covers_input) == (22, False)
    assert f.input_shape == [1, 28, 28] and f.output_shape == [10] and f.branches is False


# ---------------------------------------------------------------- functional calls


def test_functional_calls_count_like_modules():
    rows = table("functional.py:MeanHead").rows
    assert [r.label for r in rows] == [
        "conv3x3 8 p1", "relu", "conv3x3 16", "relu", "maxpool 2x2", "conv1x1 8", "bn", "relu", "conv3x3 10",
        "gap", "flatten", "log_softmax"]  # F.relu, F.max_pool2d, x.mean((2, 3)), x.view(-1, 10), F.log_softmax
    assert rows[4].name == "" and rows[5].name == "trans"  # functional calls have no module
    assert [str(r.out_shape) for r in rows[4:]] == ["13x13x16", "13x13x8", "13x13x8", "13x13x8", "11x11x10",
                                                    "1x1x10", "10", "10"]
    f = facts("functional.py:MeanHead")
    assert f.gap is True and f.transitions == 1 and f.rf.final == 10 and f.output_shape == [10]


def test_avg_pool2d_over_x_size_is_the_same_network_with_a_whole_map_pool():
    mean = table("functional.py:MeanHead")
    avg = table("functional.py:AvgPoolSizeHead")
    assert [r.label for r in avg.rows][9:] == ["avgpool 11x11", "flatten", "log_softmax"]
    assert geometry(avg)[:9] == geometry(mean)[:9]
    assert avg.rows[9].rf == mean.rows[9].rf == (30, 30)
    assert facts("functional.py:AvgPoolSizeHead").gap is True


def test_activations_and_layer_settings_are_read_from_the_graph():
    class Zoo(nn.Module):
        def __init__(self):
            super().__init__()
            self.same = nn.Conv2d(1, 8, 3, padding="same", dilation=2)
            self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False)
            self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
            self.acts = nn.Sequential(nn.LeakyReLU(), nn.GELU(), nn.SiLU(), nn.ELU(), nn.ReLU6(),
                                      nn.Sigmoid(), nn.Tanh())
            self.drop = nn.Dropout2d(0.05)

        def forward(self, x):
            x = self.drop(self.acts(self.same(x)))
            x = self.pool(self.grouped(x))
            return torch.softmax(torch.flatten(x.mean((2, 3), keepdim=True), 1), dim=1)

    t = table_from_module(Zoo())
    assert [r.label for r in t.rows] == [
        "conv3x3 8 same d2", "leaky_relu", "gelu", "silu", "elu", "relu6", "sigmoid", "tanh", "dropout 0.05",
        "conv3x3 8 s2 p1 g4", "maxpool 3x3 s2 p1", "gap", "flatten", "softmax"]
    assert [str(r.out_shape) for r in t.rows if r.kind in ("conv", "maxpool")] == ["28x28x8", "14x14x8", "8x8x8"]
    assert t.rows[0].rf == (5, 5) and t.params == t.trainable == 80 + 8 * 2 * 9


def test_decomposed_exported_program_gives_the_same_sizes_and_parameters(tmp_path):
    """Core-ATen graphs (convolution, max_pool2d_with_indices + getitem, _native_batch_norm...) read the same."""
    module = build("course_net.py:Net").eval()
    program = torch.export.export(module, (torch.zeros(1, 1, 28, 28),), strict=False).run_decompositions()
    torch.export.save(program, tmp_path / "core.pt2")
    core = table_from_target(str(tmp_path / "core.pt2"), "1x28x28")
    plain = table("course_net.py:Net")
    without_dropout = [g for g in geometry(plain) if g[0] != "dropout"]  # eval-mode dropout decomposes to nothing
    assert geometry(core) == without_dropout
    assert core.params == core.trainable == 13_808


# ---------------------------------------------------------------- branching graphs


def test_residual_add_joins_two_paths_with_the_larger_receptive_field():
    t = table("branching.py:Residual")
    assert t.branches is True
    add = next(r for r in t.rows if r.kind == "add")
    skip, deep = (t.rows[i - 1] for i in add.inputs)
    assert (skip.label, skip.rf) == ("relu", (3, 3))  # after conv1
    assert (deep.label, deep.rf) == ("conv3x3 8 p1", (7, 7))  # conv1 -> conv2 -> conv3
    assert add.rf == (7, 7) and str(add.out_shape) == "28x28x8"
    assert facts("branching.py:Residual").branches is True


def test_concat_joins_channels_and_takes_the_larger_receptive_field():
    t = table("branching.py:Concat")
    cat = next(r for r in t.rows if r.kind == "cat")
    assert [t.rows[i - 1].label for i in cat.inputs] == ["conv1x1 4", "conv5x5 6 p2"]
    assert [t.rows[i - 1].inputs for i in cat.inputs] == [(0,), (0,)]  # both read the image
    assert str(cat.out_shape) == "28x28x10" and cat.rf == (5, 5)
    assert t.branches is True


# ---------------------------------------------------------------- GAP, Linear, transitions, parameters


@pytest.mark.parametrize("name", ["AdaptiveGap", "AvgPoolWhole", "AvgPoolSize", "MeanLastDims"])
def test_global_average_pooling_written_any_way_is_gap(name):
    f = facts(f"gap_variants.py:{name}")
    assert f.gap is True and f.output_shape == [10] and f.rf.final == 10


def test_average_pool_over_part_of_the_map_is_not_gap():
    t = table("gap_variants.py:AvgPoolPartial")
    assert [(r.label, str(r.out_shape)) for r in t.rows[-2:]] == [("avgpool 2x2", "3x3x10"), ("flatten", "90")]
    f = facts("gap_variants.py:AvgPoolPartial")
    assert f.gap is False and f.output_shape == [90]


def test_a_linear_layer_is_counted():
    f = facts("with_linear.py:FcHead")
    assert f.layers.linear == 1 and f.gap is False
    assert table("with_linear.py:FcHead").rows[-1].params == 13 * 13 * 8 * 10 + 10


def test_transitions_count_both_orders():
    assert facts("course_net.py:Net").transitions == 1  # 1x1 (32 -> 10) then max-pool
    assert facts("functional.py:MeanHead").transitions == 1  # max-pool then 1x1 (16 -> 8), bn + relu after
    assert facts("branching.py:Concat").transitions == 0  # its 1x1s do not cut channels next to the pool


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_table_parameters_equal_the_modules_own_count(name):
    module = build(name)
    t = table(name)
    assert t.params == t.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert t.buffers == t.module_buffers == sum(b.numel() for b in module.buffers())


def test_a_layer_never_called_makes_module_and_table_counts_differ():
    t = table_from_target(target("with_linear.py:Unused"), "1x28x28")
    assert (t.params, t.trainable) == (13_610, 13_720)  # the spare Linear(10, 10) is never called
    assert "never called" in t.notes[0]
    assert structure_facts(t, trainable=t.trainable).params.trainable == 13_720


# ---------------------------------------------------------------- export fallback, .pt2, cross-check


@pytest.mark.parametrize("name", ["course_net.py:Net", "functional.py:AvgPoolSizeHead", "branching.py:Residual"])
def test_torch_fx_fallback_reads_the_same_table_and_says_why(monkeypatch, name):
    def refuse(*args, **kwargs):
        raise RuntimeError("data-dependent control flow")

    monkeypatch.setattr(torch.export, "export", refuse)
    module = build(name)
    t = table_from_module(module)
    assert module.training  # put back in the mode it came in
    assert t.traced_with == "fx"
    assert "torch.export failed (RuntimeError: data-dependent control flow" in t.notes[0]
    assert geometry(t) == geometry(table(name))
    assert [r.name for r in t.rows if r.kind == "conv"] == [r.name for r in table(name).rows if r.kind == "conv"]


def test_pt2_round_trip_takes_its_input_from_the_program(tmp_path):
    module = build("course_net.py:Net").eval()
    torch.export.save(torch.export.export(module, (torch.zeros(1, 1, 28, 28),), strict=False), tmp_path / "net.pt2")
    t = table_from_target(str(tmp_path / "net.pt2"), "3x99x99")  # --input is ignored for a .pt2
    assert t.input.as_list() == [28, 28, 1]
    assert geometry(t) == geometry(table("course_net.py:Net"))
    assert (t.trainable, t.module_buffers) == (13_808, 230)


def test_exported_program_with_a_dynamic_batch():
    """What the clean evaluation process hands over: a program exported for batches of any size."""
    module = build("branching.py:Residual").eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},), strict=False)
    t = table_from_program(program)
    assert geometry(t) == geometry(table("branching.py:Residual"))
    assert t.trainable == t.params == 1_338


def test_an_engine_that_gets_a_shape_wrong_is_caught(monkeypatch):
    real = torch_graph.analyze

    def forgets_padding(shape, layers):
        return real(shape, [replace(layer, p=(0, 0)) if layer.kind == "conv" else layer for layer in layers])

    monkeypatch.setattr(torch_graph, "analyze", forgets_padding)
    with pytest.raises(GraderError) as err:
        table_from_module(build("functional.py:MeanHead"))
    assert "the layer table says 26x26x8 after layer 1 (conv3x3 8 p1), but torch computes 28x28x8" in str(err.value)
    assert err.value.where == "conv1 (graph node conv2d)"


def test_an_op_the_table_cannot_follow_is_named():
    class Slices(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)

        def forward(self, x):
            return self.conv(x)[:, :4]

    with pytest.raises(GraderError) as err:
        table_from_module(Slices())
    assert "the op slice turns 1x8x26x26 into 1x4x26x26, which a layer table cannot follow" in str(err.value)


# ---------------------------------------------------------------- errors a user can cause


def test_missing_file():
    with pytest.raises(GraderError) as err:
        table_from_target("no/such/model.py:Net", "1x28x28")
    assert err.value.what == "model file no/such/model.py does not exist"


def test_missing_class_lists_the_modules_classes():
    with pytest.raises(GraderError) as err:
        table_from_target(target("gap_variants.py:Gap"), "1x28x28")
    assert err.value.what == f"{MODELS / 'gap_variants.py'} has no class 'Gap'"
    assert ("nn.Module classes in gap_variants.py: AdaptiveGap, AvgPoolPartial, AvgPoolSize, AvgPoolWhole, "
            "MeanLastDims;") in err.value.fix


def test_not_a_module_class():
    with pytest.raises(GraderError) as err:
        table_from_target(target("broken.py:not_a_class"), "1x28x28")
    assert err.value.what == "not_a_class is not an nn.Module class"
    assert err.value.fix == "nn.Module classes in broken.py: CrashingForward, NeedsArgs"


def test_a_file_that_does_not_import(tmp_path):
    (tmp_path / "bad.py").write_text("import torch\n\nclass Net(:\n    pass\n")
    with pytest.raises(GraderError) as err:
        table_from_target(f"{tmp_path / 'bad.py'}:Net", "1x28x28")
    assert err.value.what == f"importing {tmp_path / 'bad.py'} failed: SyntaxError: invalid syntax (line 3)"


def test_a_model_file_may_import_its_neighbours(tmp_path):
    (tmp_path / "blocks.py").write_text("import torch.nn as nn\n\ndef block():\n    return nn.Conv2d(1, 4, 3)\n")
    (tmp_path / "net.py").write_text("import torch.nn as nn\nfrom blocks import block\n\n"
                                     "class Net(nn.Sequential):\n    def __init__(self):\n"
                                     "        super().__init__(block(), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n")
    t = table_from_target(f"{tmp_path / 'net.py'}:Net", "1x28x28")
    assert [r.label for r in t.rows] == ["conv3x3 4", "gap", "flatten"] and t.rows[0].name == "0"


def test_constructor_that_needs_arguments():
    with pytest.raises(GraderError) as err:
        table_from_target(target("broken.py:NeedsArgs"), "1x28x28")
    assert err.value.what == "NeedsArgs() needs arguments (channels); the grader builds models with none"
    assert err.value.fix.startswith("give channels default values")


def test_forward_that_crashes_shows_the_exception_and_the_line():
    with pytest.raises(GraderError) as err:
        table_from_target(target("broken.py:CrashingForward"), "1x28x28")
    assert err.value.what == ("forward crashed on a zero input of shape 1x1x28x28: RuntimeError: "
                              "shape '[-1, 12]' is invalid for input of size 6760 (at broken.py:22)")
    assert "check --input (channels first" in err.value.fix


def test_input_written_height_first_crashes_with_a_hint():
    with pytest.raises(GraderError) as err:
        table_from_target(target("course_net.py:Net"), "28x28x1")
    assert err.value.what.startswith("forward crashed on a zero input of shape 1x28x28x1: RuntimeError:")
    assert "channels first: CxHxW" in err.value.fix


@pytest.mark.parametrize("text", ["28x28", "1x28x28x3", "axbxc", "", "1x0x28"])
def test_bad_input_string(text):
    with pytest.raises(GraderError) as err:
        parse_input_chw(text)
    assert err.value.where == "--input"
    assert "is not CxHxW" in err.value.what or "must be positive" in err.value.what


def test_input_string_forms():
    assert parse_input_chw("1x28x28") == (1, 28, 28)
    assert parse_input_chw(" 3 x 32 x 32 ") == (3, 32, 32)
    assert parse_input_chw("(1, 28, 28)") == (1, 28, 28)


def test_spec_without_a_class_and_pickles_are_refused():
    with pytest.raises(GraderError) as err:
        table_from_target("model.py:", "1x28x28")
    assert err.value.what == "'model.py:' is not path/to/file.py:ClassName"
    with pytest.raises(GraderError) as err:
        table_from_target("weights.pth", "1x28x28")
    assert "torch.save file" in err.value.what and "torch.export.save(" in err.value.fix


def test_missing_pt2():
    with pytest.raises(GraderError) as err:
        table_from_target("nowhere/model.pt2", "1x28x28")
    assert err.value.what == "exported program nowhere/model.pt2 does not exist"


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def grade(monkeypatch):
    from grader.cli import main as cli

    try:
        cli.build_parser()
    except ImportError:  # another sub-command is still being written
        monkeypatch.setattr(cli, "COMMANDS", ["grader.cli.arch_cmd"])
    return cli.main


def test_grade_arch_json_for_a_model_class(grade, capsys):
    assert grade(["arch", target("course_net.py:Net"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 13_808 and out["input"] == [28, 28, 1] and out["output"] == [10]
    assert out["module"] == {"trainable": 13_808, "total": 13_808, "buffers": 230, "traced_with": "export", "notes": []}
    assert out["layers"][0] == {
        "index": 1, "label": "conv3x3 16", "kind": "conv", "name": "convblock1.0", "inputs": [0], "in": "28x28x1",
        "out": "26x26x16", "out_shape": [26, 26, 16], "params": 144, "weights": 144, "buffers": 0, "rf": 3, "jump": 1,
        "start": 1.5}


def test_grade_arch_crash_exits_2_with_the_message(grade, capsys):
    assert grade(["arch", target("broken.py:CrashingForward")]) == 2
    err = capsys.readouterr().err
    assert "forward crashed on a zero input of shape 1x1x28x28" in err and "(at broken.py:22)" in err

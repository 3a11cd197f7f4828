"""The layer-stack engine against numbers computed by hand (course quiz, VGG-16, AlexNet)."""

import json

import pytest

from grader.arch.engine import Shape, analyze
from grader.arch.layers import Layer, normalize
from grader.arch.spec import load_stack, parse_line
from grader.errors import GraderError

SEED_400 = ("400x400x3 > c3:32 > c3:64 > c3:128 > c3:256 > c3:512 > mp2 > c1:32"
            " > c3:32 > c3:64 > c3:128 > c3:256 > mp2 > c1:32 > c3:64")


def test_seed_network_sizes_and_standard_rf():
    rows = parse_line(SEED_400).table().rows
    assert [r.out_shape.h for r in rows] == [398, 396, 394, 392, 390, 195, 195, 193, 191, 189, 187, 93, 93, 91]
    assert [r.rf[0] for r in rows] == [3, 5, 7, 9, 11, 12, 12, 16, 20, 24, 28, 30, 30, 38]
    assert [r.jump[0] for r in rows] == [1] * 5 + [2] * 6 + [4] * 3
    # 1x1 cuts 512 channels to 32: 512*32 weights + 32 biases
    assert rows[6].out_shape == Shape(195, 195, 32) and rows[6].params == 16416 and rows[6].weights == 16384


def test_vgg16_conv_part_rf_212_at_last_pool():
    vgg = parse_line("224x224x3 > (c3:64 p1)*2 > mp2 > (c3:128 p1)*2 > mp2 > (c3:256 p1)*3 > mp2"
                     " > (c3:512 p1)*3 > mp2 > (c3:512 p1)*3 > mp2").table()
    assert sum(r.kind == "conv" for r in vgg.rows) == 13 and sum(r.kind == "maxpool" for r in vgg.rows) == 5
    assert vgg.rows[-1].rf == (212, 212)
    assert vgg.output == Shape(7, 7, 512)
    assert vgg.params == 14_714_688  # torchvision vgg16().features


def test_alexnet_strided_stack_by_hand():
    # 227 -> conv11 s4: (227-11)/4+1 = 55, r=11, j=4; pool3 s2: 27, r = 11+2*4 = 19, j=8;
    # conv5 p2: 27, r = 19+4*8 = 51; pool3 s2: 13, r = 51+2*8 = 67, j=16;
    # 3x conv3 p1: 13, r = 67+32 = 99, 131, 163; pool3 s2: 6, r = 163+2*16 = 195, j=32
    t = parse_line("227x227x3 > c11:96 s4 > mp3 s2 > c5:256 p2 > mp3 s2 > c3:384 p1 > c3:384 p1"
                   " > c3:256 p1 > mp3 s2").table()
    assert [r.out_shape.h for r in t.rows] == [55, 27, 27, 13, 13, 13, 13, 6]
    assert [r.rf[0] for r in t.rows] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [r.jump[0] for r in t.rows] == [4, 8, 8, 16, 16, 16, 16, 32]
    assert t.rows[0].params == 11 * 11 * 3 * 96 + 96


def test_start_offsets_follow_padding_and_stride():
    t = parse_line("28x28x1 > c3:8 > c3:8 s2 p1 > mp2").table()
    # start_out = start_in + ((k-1)/2 - p) * j_in, from 0.5:
    # 0.5 + 1*1 = 1.5; 1.5 + (1 - 1)*1 = 1.5 (padding cancels the shift); 1.5 + 0.5*2 = 2.5
    assert [r.start[0] for r in t.rows] == [1.5, 1.5, 2.5]


def test_floor_and_ceil_mode():
    assert parse_line("7x7x1 > mp2").table().output == Shape(3, 3, 1)
    assert parse_line("7x7x1 > mp2 ceil").table().output == Shape(4, 4, 1)


def test_dilation_same_padding_groups_and_bias():
    t = parse_line("32x32x16 > c3:32 d2 > c3:32 same > c3:32 g4 nobias").table()
    assert t.rows[0].out_shape.h == 28 and t.rows[0].rf[0] == 5  # effective kernel 5
    assert t.rows[1].out_shape.h == 28 and t.rows[1].rf[0] == 7
    assert t.rows[2].params == t.rows[2].weights == 32 * (32 // 4) * 9


def test_batchnorm_params_buffers_and_linear_head():
    t = parse_line("7x7x512 > bn > flat > fc:10").table()
    assert t.rows[0].params == 1024 and t.rows[0].weights == 0 and t.rows[0].buffers == 1025
    assert t.rows[1].out_shape == Shape(1, 1, 25088, flat=True)
    assert t.rows[2].params == 7 * 7 * 512 * 10 + 10


def test_gap_sees_the_whole_map():
    t = parse_line("28x28x1 > c3:8 > mp2 > gap").table()
    # after the pool: 13x13, r=4, j=2; the map-sized window adds (13-1)*2
    assert t.rows[-1].out_shape == Shape(1, 1, 8) and t.rows[-1].rf == (28, 28)


def test_graph_merge_takes_the_largest_rf():
    def conv(k, src):
        return Layer("conv", k=(k, k), p=((k - 1) // 2,) * 2, out=8, inputs=(src,), label=f"c{k}")

    layers = [conv(3, -1), conv(3, 0), conv(5, -1), Layer("add", inputs=(1, 2), label="add")]
    t = analyze(Shape(28, 28, 8), layers)
    assert t.branches and t.rows[-1].rf == (5, 5) and t.rows[-1].inputs == (2, 3)


def test_yaml_and_one_line_give_the_same_table(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("input: [28, 28, 1]\nlayers:\n  - conv: {kernel: 3, out: 8, padding: 1}\n    repeat: 2\n"
                    "  - bn\n  - maxpool: {k: 2}\n  - conv: {k: 1, out: 4}\n  - gap: {}\n  - log_softmax\n")
    assert load_stack(str(spec)).table() == parse_line(
        "28x28x1 > c3:8 p1*2 > bn > mp2 > c1:4 > gap > log_softmax").table()


@pytest.mark.parametrize("spec, message", [
    ("28x28x1 > c3:8 > mp2 > c14:8",
     "layer 3 (conv14x14 8) at step 3 'c14:8': kernel 14 is larger than the input size 13"),
    ("28x28x1 > c3:8.5", "step 1 'c3:8.5': channels must be a whole number, got '8.5'"),
    ("28x28x1 > c3:-4", "channels must be at least 1, got -4"),
    ("28x28x0 > c3:8", "input size 28x28x0 must be positive in every dimension"),
    ("28x28 > c3:8", "input size '28x28' is not HxWxC"),
    ("28x28x1 > c3:8 > > mp2", "step 2: empty step"),
    ("28x28x1 > wobble", "unknown layer kind 'wobble'"),
    ("28x28x1 > c3:8 q7", "unknown option 'q7'"),
    ("28x28x3 > c3:8 g2", "groups=2 must divide both the input channels (3)"),
    ("28x28x1 > flat > c3:8", "conv needs a feature map, but its input is a flat vector of 784"),
    ("28x28x1 > c3:8 s2 same", "padding 'same' needs stride 1"),
    ("28x28x1 > (c3:8 > mp2", "'(' is never closed"),
    ("28x28x1 > drop1.5", "dropout rate must be a number in [0, 1), got 1.5"),
])
def test_bad_specs_name_the_layer(spec, message):
    with pytest.raises(GraderError) as err:
        parse_line(spec).table()
    assert message in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("input: [28, 28, 1]\nlayers:\n  - conv: {k: 3}\n", "<spec>:3 (layers[0]): conv needs out"),
    ("input: [28, 28, 1]\nlayers:\n  - relu\n  - conv: {k: 3, out: 8, stride: 0}\n",
     "<spec>:4 (layers[1]): stride must be at least 1"),
    ("input: [28, 28, 1]\nlayers:\n  - conv: {k: 3, out: 8, wide: 2}\n", "conv does not take 'wide'"),
    ("input: 28\nlayers: []\n", "input must be [H, W, C] or 'HxWxC', got 28"),
    ("layers: []\n", "a layer stack needs `input` and `layers`"),
    ("input: [28, 28, 1]\nlayers:\n  - conv: {k: 3, out: 8}\n    repeat: 0\n", "repeat must be a whole number >= 1"),
])
def test_bad_yaml_names_the_line(text, message):
    with pytest.raises(GraderError) as err:
        load_stack(text).table()
    assert message in str(err.value)


def test_normalize_aliases():
    layer = normalize("Conv2d", {"kernel_size": [3, 1], "out_channels": 16, "stride": 2, "padding": 1}, "x")
    assert (layer.k, layer.s, layer.p, layer.out) == ((3, 1), (2, 2), (1, 1), 16)
    assert normalize("dropout", {"p": 0.1}, "x").rate == 0.1


def test_cli_arch_json_and_error_exit_code(capsys):
    from grader.cli.main import main

    assert main(["arch", "28x28x1 > c3:8 > mp2 > c1:4 > gap", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output"] == [1, 1, 4] and [layer["rf"] for layer in out["layers"]] == [3, 4, 4, 28]
    assert main(["arch", "28x28x1 > c3:8 > mp2 > c20:4"]) == 2
    assert "kernel 20 is larger than the input size 13" in capsys.readouterr().err


@pytest.mark.parametrize("spec, where, what, meant", [
    ("28x28x1 > c3:8 > gap > fc10", "step 3", "unknown layer kind 'fc10'", "did you mean fc:10? "),
    ("28x28x1 > c3:8 > gap > dense10 s2", "step 3", "unknown layer kind 'dense10' in 'dense10 s2'",
     "did you mean fc:10? "),
    ("28x28x1 > maxpool2", "step 1", "unknown layer kind 'maxpool2'", "did you mean mp2? "),
    ("28x28x1 > conv3", "step 1", "unknown layer kind 'conv3'", "did you mean c3:OUT? "),
    ("28x28x1 > c3:8 > rleu", "step 2", "unknown layer kind 'rleu'", "did you mean relu? "),
    ("28x28x1 > wobble", "step 1", "unknown layer kind 'wobble'", ""),
])
def test_an_unknown_layer_shows_how_each_kind_is_written_and_the_token_meant(spec, where, what, meant):
    with pytest.raises(GraderError) as err:
        parse_line(spec)
    assert (err.value.where, err.value.what) == (where, what)
    assert err.value.fix.startswith(meant + "write each layer as one of: c3:16 (a KxK convolution, OUT channels), "
                                    "mp2 (max-pool KxK), ap2 (average pool KxK), gap, bn, drop0.1 (dropout, rate P), "
                                    "flat, fc:10 (fully connected, OUT features), relu (or relu6, ")
    assert err.value.fix.endswith("; options after it: s2 p1 d2 g4 same nobias ceil, or key=value "
                                  "(`grade arch --help`)")


def test_a_kind_and_its_number_apart_suggests_the_token(capsys):
    from grader.cli.main import EXIT_USAGE, main

    assert main(["arch", "28x28x1 > c3:8 > gap > fc 10"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: step 3: unknown option '10' in 'fc 10'\n  -> did you mean fc:10? options are s2")

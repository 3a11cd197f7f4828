"""`grade arch SPEC`: the layer table (sizes, receptive fields, parameters) of a stack or a torch model."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from grader.arch.engine import Table
from grader.arch.render import rich_table
from grader.arch.spec import __doc__ as GRAMMAR, load_stack
from grader.errors import GraderError

HELP = f"""\
Print the layer table of a layer stack or a PyTorch model: input and output size
(HxWxC), parameters with and without bias / batch norm, receptive field (RF, the
standard recurrence r_out = r_in + (k-1)*j_in), jump (cumulative stride) and
start (centre of the first output's field, pixel 0 at 0.5).

SPEC is one of
  a one-line stack      grade arch "28x28x1 > c3:8 > bn > relu > mp2 > c1:8 > gap"
  a YAML file           grade arch net.yaml      (input: [28, 28, 1]; layers: [{{conv: {{k: 3, out: 8}}}}, ...])
  a model class         grade arch model.py:Net --input 1x28x28
  an exported program   grade arch model.pt2

YAML layer kinds and keys (aliases in brackets):
  conv: {{k, out, s: 1, p: 0 | same, d: 1, groups: 1, bias: true}}   [kernel, stride, padding, dilation]
  maxpool / avgpool: {{k, s: k, p: 0, ceil: false}}
  gap, bn, flatten, relu, sigmoid, tanh, softmax, log_softmax, ...: no keys
  dropout: {{p: 0.5}}      linear: {{out, bias: true}}      any layer: repeat: N
One-line grammar:{GRAMMAR.split("One-line grammar:", 1)[1]}
Examples
  grade arch "400x400x3 > c3:32 > c3:64 > c3:128 > c3:256 > c3:512 > mp2 > c1:32"
  grade arch "224x224x3 > (c3:64 p1)*2 > mp2 > (c3:128 p1)*2 > mp2" --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("arch", help="layer table: output sizes, receptive fields, parameters",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", metavar="SPEC", help="one-line stack, YAML file, file.py:Class or model.pt2")
    parser.add_argument("--input", metavar="CxHxW", default="1x28x28",
                        help="input of a torch model, channels first as torch writes it (default 1x28x28)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.set_defaults(handler=run)


def _is_torch_target(spec: str) -> bool:
    return spec.endswith((".pt2", ".pt", ".pth")) or (".py:" in spec)


def load_table(spec: str, input_chw: str) -> tuple[Table, str]:
    if spec.lower().endswith(".ipynb"):
        raise GraderError("a notebook is not a layer stack, so `grade arch` cannot read it", where=spec,
                          fix=f"to check the model a notebook builds, run `grade check {spec}` (add --static for a "
                              "quick look); `grade arch` takes a one-line stack, a YAML file, model.py:Net or an "
                              "exported model.pt2")
    if _is_torch_target(spec):
        from grader.arch.torch_graph import table_from_target  # torch is imported only when a model is asked for

        return table_from_target(spec, input_chw), spec
    stack = load_stack(spec)
    return stack.table(), stack.source


def run(args: argparse.Namespace) -> int:
    table, title = load_table(args.spec, args.input)
    if args.json:
        json.dump(table.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=160)  # pipes get the whole table, unwrapped
    console.print(rich_table(table, title=title))
    if table.branches:
        console.print("The graph branches: where paths join, the RF is the largest over the paths.")
    for note in getattr(table, "notes", ()):  # torch models: fx fallback, parameter counts that differ
        console.print(f"note: {note}", markup=False, highlight=False)
    return 0

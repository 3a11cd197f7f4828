"""The architecture facts a rubric reads (`model.*`), computed from a layer table.

Pure: the same table comes from a YAML / one-line spec or from a torch model
(`grader.arch.torch_graph`), so a student's model and the spec an instructor
writes for it give the same facts.

Definitions that need a decision:

- `gap`: a `gap` row, or an average pool whose single window covers the whole
  map (`nn.AvgPool2d(7)` on a 7x7 map, `F.avg_pool2d(x, x.size()[2:])`). An
  average pool over part of the map is a plain pool, even when a following
  flatten makes it look like the head. An average of a 1x1 map (an
  `nn.AdaptiveAvgPool2d(1)` after the convolutions reached 1x1) averages
  nothing: it is not GAP, and `avgpool_on_1x1` gives its table row.
- `transitions`: 1x1 convolutions that cut channels next to a max-pool, with only
  batch norm, activation, dropout, identity or other 1x1 convolutions between
  them (max-pool, a 1x1 keeping 32 channels, then a 1x1 from 32 to 16 is a
  transition at the second 1x1). The course teaches both orders as a transition
  block: max-pool then 1x1 (pool, then squeeze) and 1x1 then max-pool (squeeze,
  then pool). `transition_layers` gives the table row of each.
- `rf.final`: the receptive field of the last spatial layer, the one that feeds
  the first global average, flatten or linear layer (the larger of the two axes).
- `layers_after_last_maxpool`: convolutions and linear layers after the last
  max-pool; without a max-pool, all of them (none is close to the output).
- shapes are channels first, as torch writes them: input [C, H, W], output
  [features] or [C, H, W].
"""

from __future__ import annotations

from grader.arch.engine import Row, Table
from grader.facts import LayerCounts, ModelFacts, ParamFacts, RfFacts

# layers that change neither the map nor the channels: they may sit inside a transition block
_PASS_THROUGH = ("bn", "act", "dropout", "identity")
_AVERAGES = ("gap", "avgpool")


def structure_facts(table: Table, *, trainable: int | None = None, total: int | None = None,
                    buffers: int | None = None) -> ModelFacts:
    """`model.*` facts of a table; pass the module's own counts (`sum(p.numel())`) where there is one.

    Without them, parameters and buffers come from the table; `total` defaults to `trainable`.
    """
    rows = table.rows
    trainable = table.params if trainable is None else trainable
    last_spatial = _last_spatial(table)
    rf = last_spatial.rf if last_spatial else (1, 1)
    maxpools = [r.index for r in rows if r.kind == "maxpool"]
    return ModelFacts(
        params=ParamFacts(trainable=trainable, total=trainable if total is None else total),
        buffers=table.buffers if buffers is None else buffers,
        layers=LayerCounts(
            linear=_count(rows, "linear"), conv=_count(rows, "conv"),
            conv1x1=sum(r.kind == "conv" and _is_1x1(table, r) for r in rows),
            maxpool=len(maxpools), batchnorm=_count(rows, "bn"), dropout=_count(rows, "dropout")),
        activations=sorted({r.label for r in rows if r.kind == "act"}),
        gap=any(_is_global_average(table, r) for r in rows),
        transitions=sum(_is_transition(table, r) for r in rows),
        transition_layers=[r.index for r in rows if _is_transition(table, r)],
        avgpool_on_1x1=[r.index for r in rows if r.kind in _AVERAGES and _on_1x1(r)],
        layers_after_last_maxpool=sum(r.kind in ("conv", "linear") and r.index > max(maxpools, default=0)
                                      for r in rows),
        rf=RfFacts(final=max(rf), covers_input=rf[0] >= table.input.h and rf[1] >= table.input.w,
                   layer=last_spatial.index if last_spatial else None),
        input_shape=[table.input.c, table.input.h, table.input.w],
        output_shape=_channels_first(table),
        branches=table.branches,
        table=[r.as_dict() for r in rows],
    )


def _count(rows: tuple[Row, ...], kind: str) -> int:
    return sum(r.kind == kind for r in rows)


def _source(table: Table, row: Row) -> Row | None:
    """The row feeding `row` (its first input); None for the stack's input."""
    return table.rows[row.inputs[0] - 1] if row.inputs and row.inputs[0] else None


def _window(table: Table, row: Row) -> tuple[tuple[float, float], tuple[float, float]]:
    """(kernel, padding) per axis of a pooling row, recovered from the RF recurrence:
    r_out = r_in + (k - 1) j_in and start_out = start_in + ((k - 1) / 2 - p) j_in."""
    src = _source(table, row)
    rf_in, jump_in, start_in = (src.rf, src.jump, src.start) if src else ((1, 1), (1, 1), (0.5, 0.5))
    k0, k1 = ((row.rf[i] - rf_in[i]) / jump_in[i] + 1 for i in (0, 1))
    k = (k0, k1)
    p0, p1 = ((k[i] - 1) / 2 - (row.start[i] - start_in[i]) / jump_in[i] for i in (0, 1))
    return k, (p0, p1)


def _is_1x1(table: Table, row: Row) -> bool:
    k, _ = _window(table, row)
    return k == (1, 1)


def _on_1x1(row: Row) -> bool:
    return not row.in_shape.flat and (row.in_shape.h, row.in_shape.w) == (1, 1)


def _is_global_average(table: Table, row: Row) -> bool:
    if row.kind not in _AVERAGES or _on_1x1(row):
        return False
    if row.kind == "gap":
        return True
    if (row.out_shape.h, row.out_shape.w) != (1, 1):
        return False
    (kh, kw), (ph, pw) = _window(table, row)
    return kh - ph >= row.in_shape.h and kw - pw >= row.in_shape.w  # the one window reaches the far edge


def _last_spatial(table: Table) -> Row | None:
    """The row feeding the first global average / flatten / linear (the last row when there is none)."""
    for row in table.rows:
        if row.kind in ("flatten", "linear") or _is_global_average(table, row):
            source = _source(table, row)
            while source is not None and source.kind in _AVERAGES and _on_1x1(source):  # it averages nothing
                source = _source(table, source)
            return source
    return table.rows[-1] if table.rows else None


def _is_transition(table: Table, row: Row) -> bool:
    if row.kind != "conv" or not _is_1x1(table, row) or row.out_shape.c >= row.in_shape.c:
        return False
    before = _source(table, row)
    while before is not None and _inside_transition(table, before):
        before = _source(table, before)
    after = _only_consumer(table, row)
    while after is not None and _inside_transition(table, after):
        after = _only_consumer(table, after)
    return any(r is not None and r.kind == "maxpool" for r in (before, after))


def _inside_transition(table: Table, row: Row) -> bool:
    """A layer that may sit between a max-pool and the 1x1 that cuts channels: BN, activation, dropout,
    identity, or another 1x1 convolution."""
    return row.kind in _PASS_THROUGH or (row.kind == "conv" and _is_1x1(table, row))


def _only_consumer(table: Table, row: Row) -> Row | None:
    """The one row reading `row`'s output; None where the path ends or branches."""
    readers = [r for r in table.rows if row.index in r.inputs]
    return readers[0] if len(readers) == 1 else None


def _channels_first(table: Table) -> list[int]:
    out = table.output
    return [out.c] if out.flat else [out.c, out.h, out.w]

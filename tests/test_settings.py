"""One record of run limits: the rubric keys, the command-line flags and the sandbox spec all come from it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from grader import yamlio
from grader.cli.common import add_run_options, limits_given
from grader.errors import GraderError
from grader.rubric.load import rubric_from_yaml
from grader.sandbox import SandboxSpec
from grader.sandbox.disk import DiskWatch, used
from grader.settings import LIMITS, Options, RubricLimits, RunLimits, limits_from, parse_size, show_size


def _parser(**kw) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_run_options(parser, **kw)
    return parser


def test_every_limit_is_a_flag_a_rubric_key_and_a_sandbox_setting():
    flags = {a.option_strings[0] for a in _parser()._actions if a.option_strings}
    keys = set(RubricLimits.model_fields)
    for limit in LIMITS:
        assert limit.flag in flags and limit.rubric in keys and limit.help
    assert {"--disk", "--timeout", "--memory", "--processes"} <= flags
    spec = SandboxSpec.for_run(RunLimits(disk_bytes=5 << 20, max_processes=7), scratch=Path("/tmp/x"))
    assert (spec.disk_bytes, spec.max_processes, spec.memory_bytes) == (5 << 20, 7, RunLimits().memory_bytes)


def test_a_limit_on_the_command_line_lays_over_the_rubrics():
    args = _parser(defaults_from_rubric=True).parse_args(["--disk", "300M", "--timeout", "60"])
    base = RunLimits(wall_seconds=3600, memory_bytes=4 << 30)
    limits = limits_given(args, base)
    assert (limits.disk_bytes, limits.wall_seconds, limits.memory_bytes) == (300 << 20, 60, 4 << 30)


@pytest.mark.parametrize("argv, where, what", [
    (["--disk", "lots"], "--disk", "'lots' is not a size"),
    (["--timeout", "-5"], "--timeout", "'-5' must be positive"),
    (["--processes", "many"], "--processes", "'many' is not a number"),
])
def test_a_bad_flag_value_names_the_flag_and_the_fix(argv, where, what):
    args = _parser().parse_args(argv)
    with pytest.raises(GraderError) as err:
        limits_given(args)
    assert err.value.where == where and err.value.what == what and err.value.fix


def test_a_cell_limit_longer_than_the_run_is_refused():
    with pytest.raises(GraderError, match="cell limit .* is longer than the whole run"):
        limits_from({"--timeout": 60, "--cell-timeout": 90})


def test_the_rubric_limits_key_reads_every_limit():
    doc = yamlio.loads("id: t\ntitle: T\nlimits: {time: 600, disk: 512M, processes: 128, output: 1M}\n"
                       "items:\n  - {id: a, title: A, fact: model.gap, eq: true, points: 1}\n", "r.yaml")
    limits = rubric_from_yaml(doc).limits.run_limits()
    assert (limits.wall_seconds, limits.disk_bytes, limits.max_processes, limits.output_bytes) == (
        600, 512 << 20, 128, 1 << 20)


def test_sizes_read_and_show_alike():
    assert parse_size("6G") == 6 << 30 and parse_size("1.5G") == 3 << 29 and parse_size("800M") == 800 << 20
    assert show_size(6 << 30) == "6G" and show_size(3 << 29) == "1.5G" and parse_size(show_size(512 << 20)) == 512 << 20


def test_the_disk_watch_measures_blocks_and_files_and_sees_a_folder_cross_its_quota(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(8):
        (tmp_path / "a" / f"f{i}").write_bytes(b"x" * (256 << 10))
    usage = used(tmp_path)
    assert usage.bytes >= 8 * (256 << 10) and usage.files == 9
    assert DiskWatch(tmp_path, 4 << 20, 100).exceeded() is False
    assert DiskWatch(tmp_path, 1 << 20, 100).exceeded() is True
    assert DiskWatch(tmp_path, 4 << 20, 8).exceeded() is True

def test_with_can_reset_a_field_and_with_overrides_keeps_what_is_not_given():
    pinned = Options(gpu=True, gpu_index=2, keep=Path("/kept"))
    reset = pinned.with_(gpu=None, keep=None)
    assert (reset.gpu, reset.keep, reset.gpu_index) == (None, None, 2)  # None asks for a GPU when present
    kept = pinned.with_overrides(gpu=None, gpu_index=None, mode="static")  # flags left unset keep the rubric's
    assert (kept.gpu, kept.gpu_index, kept.mode) == (True, 2, "static")

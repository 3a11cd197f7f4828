"""Where MNIST is shown to a notebook: ./data, ../data and every root it names, never over its working directory."""

from pathlib import Path

from grader.data.staging import data_binds


def test_binds_cover_the_usual_roots_and_the_named_ones(tmp_path):
    staged, work = tmp_path / "staged", tmp_path / "job" / "work"
    binds = dict((inside, host) for host, inside in data_binds(staged, work, ("../data", "./mnist", "/content/data")))
    assert set(binds) == {work / "data", work.parent / "data", work / "mnist", Path("/content/data")}
    assert set(binds.values()) == {staged}


def test_roots_that_would_hide_the_workdir_or_system_folders_are_skipped(tmp_path):
    staged, work = tmp_path / "staged", tmp_path / "job" / "work"
    insides = {inside for _, inside in data_binds(staged, work, (".", "..", "/", "/proc/x", "/dev/shm"))}
    assert insides == {work / "data", work.parent / "data"}

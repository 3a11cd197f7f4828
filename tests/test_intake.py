"""Finding submissions: folders, LMS file names, zips (and the zips we refuse)."""

import os
import time
import zipfile

import pytest

from grader.errors import GraderError
from grader.intake import DEFAULT_ID_PATTERN, discover, safe_extract, student_id


@pytest.mark.parametrize("name, expected", [
    ("smithjohn_12345_67890_assignment4.ipynb", "12345"),      # Canvas
    ("smithjohn_LATE_12345_67890_assignment4.ipynb", "12345"),  # Canvas, late
    ("Jane Doe_2345_assignsubmission_file_", "2345"),           # Moodle folder
    ("alice.ipynb", "alice"),                                   # anything else: the stem
])
def test_student_id_from_lms_names(name, expected):
    assert student_id(name, DEFAULT_ID_PATTERN) == expected


def test_discover_files_and_folders_newest_resubmission_wins(tmp_path):
    (tmp_path / "smith_111_1_a.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("ignored")
    old = tmp_path / "doe_222_1_a.ipynb"
    old.write_text('{"old": 1}')
    os.utime(old, (time.time() - 100, time.time() - 100))
    (tmp_path / "doe_222_2_a.ipynb").write_text('{"new": 1}')  # the same file, handed in again
    folder = tmp_path / "Bo Lee_333_assignsubmission_file_"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("{}")
    (folder / "mine.ipynb").write_text("{}")
    subs = discover(tmp_path)
    assert [s.student for s in subs] == ["111", "222", "333"]
    assert subs[1].path.name == "doe_222_2_a.ipynb" and subs[2].path.name == "mine.ipynb"
    assert len(subs[0].digest) == 64


def test_discover_errors_say_what_to_do(tmp_path):
    with pytest.raises(GraderError, match="no submissions found"):
        discover(tmp_path)
    with pytest.raises(GraderError, match="no group named `id`"):
        discover(tmp_path, pattern=r"\d+")
    with pytest.raises(GraderError, match="not a valid regular expression"):
        discover(tmp_path, pattern="(")


def test_zip_with_wrapping_folder_is_unpacked(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("submissions/smith_111_1_a.ipynb", "{}")
        zf.writestr("submissions/doe_222_1_a.ipynb", "{}")
    root = safe_extract(archive, tmp_path / "out")
    assert [s.student for s in discover(root)] == ["111", "222"]


@pytest.mark.parametrize("entry", ["../evil.ipynb", "/etc/evil.ipynb", "a/../../evil.ipynb"])
def test_zip_entries_outside_the_folder_are_refused(tmp_path, entry):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(entry, "{}")
    with pytest.raises(GraderError, match="points outside the folder"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.ipynb").exists()


def test_zip_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a_1_x.ipynb", b"\0" * (50 << 20))
    with pytest.raises(GraderError, match="a zip bomb"):
        safe_extract(archive, tmp_path / "out")


def test_not_a_zip(tmp_path):
    fake = tmp_path / "x.zip"
    fake.write_text("nope")
    with pytest.raises(GraderError, match="not a zip file"):
        safe_extract(fake, tmp_path / "out")

"""The assignments a server grades: every rubric in --rubrics, by its id, loaded once at start; and their
self-check keys (--selfcheck-keys), kept out of the rubrics because students get the rubric files."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from grader import yamlio
from grader.api import grading_environment, load_rubric
from grader.errors import GraderError
from grader.service.errors import ServiceError
from grader.service.settings import MIN_SECRET_BYTES

if TYPE_CHECKING:
    from grader.rubric.schema import Rubric

MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(16))'"


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    mode: str  # static | evaluate | execute: evaluate needs the exported model beside the notebook
    rubric: Rubric
    path: Path
    selfcheck_key: Optional[str] = field(default=None, repr=False)  # None: self-checks only through LTI

    @property
    def needs_model(self) -> bool:
        return self.mode == "evaluate"

    def needs_gpu(self, depth: Optional[str] = None) -> bool:
        """Whether its jobs go to the GPU lane: the rubric requires a GPU and the job runs code (a static grade
        or a static self-check reads the notebook only); `depth` is a self-check's."""
        return self.rubric.limits.gpu == "required" and self.mode != "static" and depth != "static"

    def accepts(self, key: str) -> bool:
        """Whether `key` is this assignment's self-check key; compared in constant time (over digests, so that
        not even the key's length shows)."""
        if self.selfcheck_key is None:
            return False
        return hmac.compare_digest(hashlib.sha256(key.encode()).digest(),
                                   hashlib.sha256(self.selfcheck_key.encode()).digest())


def _selfcheck_keys(path: Path, known: set[str]) -> dict[str, str]:
    """{assignment id: key} from the YAML file; GraderError with the file and line for anything else."""
    doc = yamlio.load(path)
    fix = f"write one line per assignment, `ASSIGNMENT_ID: KEY`; make a key with: {MAKE_KEY}"
    if not isinstance(doc.data, dict):
        raise GraderError("a self-check key file is a mapping of assignment ids to keys", where=doc.where(()),
                          fix=fix)
    keys: dict[str, str] = {}
    for assignment, key in doc.data.items():
        where = doc.where((assignment,))
        if str(assignment) not in known:
            raise GraderError(f"no assignment {assignment!r} among the rubrics", where=where,
                              fix="use one of: " + ", ".join(sorted(known)))
        if not isinstance(key, str) or len(key.encode()) < MIN_SECRET_BYTES:  # the key itself is never shown
            raise GraderError(f"the self-check key of {assignment} is not text of at least {MIN_SECRET_BYTES} bytes",
                              where=where, fix=f"make a key with: {MAKE_KEY}")
        keys[str(assignment)] = key
    return keys


def _loaded(path: Path):
    """The rubric in `path`; a grading environment it needs and that is not built stops here too."""
    rubric = load_rubric(path)
    if rubric.mode == "execute":
        grading_environment(rubric)
    return rubric


class Assignments:
    def __init__(self, folder: Path, selfcheck_keys: Optional[Path] = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise GraderError("no such folder", where=str(folder), fix="give --rubrics a folder of rubric .yaml files")
        self.by_id: dict[str, Assignment] = {}
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            rubric = _loaded(path)  # a bad rubric stops the start with its file, line and item
            if rubric.id in self.by_id:
                raise GraderError(f"rubric id {rubric.id!r} is used twice (also in {self.by_id[rubric.id].path})",
                                  where=str(path), fix="give each rubric its own id")
            self.by_id[rubric.id] = Assignment(rubric.id, rubric.title, rubric.mode, rubric, path)
        if not self.by_id:
            raise GraderError("no rubric (.yaml) in the folder", where=str(folder),
                              fix="put one rubric per assignment there, e.g. a copy of rubrics/mnist-s3.yaml")
        if selfcheck_keys is not None:
            for assignment, key in _selfcheck_keys(selfcheck_keys, set(self.by_id)).items():
                self.by_id[assignment] = replace(self.by_id[assignment], selfcheck_key=key)

    def reload(self, assignment_id: str) -> Assignment:
        """The assignment with its rubric read again from its file (a fixed threshold, points, the pass rule), in
        place of the one loaded at start; a rubric that no longer loads, or now has another id, is refused (422)
        and the loaded one stays."""
        known = self.get(assignment_id)
        try:
            rubric = _loaded(known.path)
        except GraderError as err:
            raise ServiceError(422, "invalid_rubric", f"the rubric of {assignment_id!r} no longer loads: {err.what}",
                               where=err.where or str(known.path), fix=err.fix or "fix the rubric file") from None
        if rubric.id != known.id:
            raise ServiceError(422, "invalid_rubric", f"the rubric file of {assignment_id!r} now has the id "
                               f"{rubric.id!r}", where=str(known.path),
                               fix=f"keep `id: {known.id}` (a new id is a new assignment: restart the server)")
        self.by_id[known.id] = replace(known, title=rubric.title, mode=rubric.mode, rubric=rubric)
        return self.by_id[known.id]

    def __iter__(self):
        return iter(self.by_id.values())

    def get(self, assignment_id: str, where: str = "assignment") -> Assignment:
        found = self.by_id.get(assignment_id)
        if found is None:
            raise ServiceError(404, "unknown_assignment", f"no assignment {assignment_id!r} on this server",
                               where=where, fix="use one of: " + ", ".join(sorted(self.by_id)))
        return found

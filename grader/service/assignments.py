"""The assignments a server grades: every rubric in --rubrics, by its id, loaded once at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.api import grading_environment, load_rubric
from grader.errors import GraderError
from grader.service.errors import ServiceError


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    mode: str  # static | evaluate | execute: evaluate needs the exported model beside the notebook
    rubric: object
    path: Path

    @property
    def needs_model(self) -> bool:
        return self.mode == "evaluate"


class Assignments:
    def __init__(self, folder: Path):
        folder = Path(folder)
        if not folder.is_dir():
            raise GraderError("no such folder", where=str(folder), fix="give --rubrics a folder of rubric .yaml files")
        self.by_id: dict[str, Assignment] = {}
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            rubric = load_rubric(path)  # a bad rubric stops the start with its file, line and item
            if rubric.mode == "execute":  # so does a grading environment not built yet, saying how to build it
                grading_environment(rubric)
            if rubric.id in self.by_id:
                raise GraderError(f"rubric id {rubric.id!r} is used twice (also in {self.by_id[rubric.id].path})",
                                  where=str(path), fix="give each rubric its own id")
            self.by_id[rubric.id] = Assignment(rubric.id, rubric.title, rubric.mode, rubric, path)
        if not self.by_id:
            raise GraderError("no rubric (.yaml) in the folder", where=str(folder),
                              fix="put one rubric per assignment there, e.g. a copy of rubrics/mnist-s3.yaml")

    def __iter__(self):
        return iter(self.by_id.values())

    def get(self, assignment_id: str, where: str = "assignment") -> Assignment:
        found = self.by_id.get(assignment_id)
        if found is None:
            raise ServiceError(404, "unknown_assignment", f"no assignment {assignment_id!r} on this server",
                               where=where, fix="use one of: " + ", ".join(sorted(self.by_id)))
        return found

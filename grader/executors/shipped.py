"""What an executor is handed: the submissions themselves, or, for an executor whose tasks may run on another
machine, each submission with its files as bytes (`Shipped`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

from grader.executors.local import Executor
from grader.handin import collect
from grader.intake import Submission


@dataclass(frozen=True)
class Shipped:
    """A submission with its files as bytes, for an executor whose tasks may run on another machine."""

    submission: Submission
    files: tuple[tuple[str, bytes], ...]  # (role, bytes): "submission" and, when handed in, "model"
    handin: tuple[tuple[str, bytes], ...] = ()  # the hand-in's staged files besides the notebook: (path, bytes)

    @staticmethod
    def pack(submission: Submission) -> Shipped:
        files = [("submission", submission.path.read_bytes())]
        if submission.model is not None:
            files.append(("model", submission.model.read_bytes()))
        handin: tuple[tuple[str, bytes], ...] = ()
        if submission.root is not None:
            staged = submission.handin or collect(submission.root, submission.path)
            handin = tuple((f.path, (staged.root / f.path).read_bytes()) for f in staged.files
                           if f.path != staged.notebook)
            files[0] = ("submission/" + staged.notebook, files[0][1])
        return Shipped(submission, tuple(files), handin)

    def unpack(self, folder: Path) -> Submission:
        """The submission with its files written under `folder`, under their own names (facts may read them), its
        hand-in's files around the notebook as they lay."""
        paths = {"submission": self.submission.path, "model": self.submission.model}
        placed = {}
        for role, content in self.files:
            role, _, inside = role.partition("/")
            if not inside:  # the notebook or the model as handed in: under its own name
                given = paths[role]
                assert given is not None, f"a shipped {role} file is one the submission names (pack)"
                inside = given.name
            target = folder / role / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            placed[role] = target
        for inside, content in self.handin:
            target = folder / "submission" / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        root = folder / "submission" if self.submission.root is not None else None
        listed = self.submission.handin
        if listed is not None:
            assert root is not None, "a submission with a hand-in has the hand-in's root (HandIn.root)"
            listed = replace(listed, root=root)
        return replace(self.submission, path=placed["submission"], model=placed.get("model"), root=root,
                       handin=listed)


Item = Union[Submission, Shipped]  # what an executor runs a FactsTask on


def handed_over(executor: Executor, submissions: list[Submission]) -> list[Item]:
    """What the executor is handed: the submissions, or their files as bytes when its tasks may run elsewhere."""
    return [Shipped.pack(s) for s in submissions] if executor.remote else list(submissions)


def submission_of(item: Item) -> Submission:
    return item.submission if isinstance(item, Shipped) else item

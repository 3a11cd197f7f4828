"""A submission as it arrives (JSON with a base64 notebook, or a multipart upload), checked before it is queued."""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from typing import Annotated, Any, Optional
from urllib.parse import urlsplit

import nbformat
from nbformat.warnings import MissingIDFieldWarning
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.inspect.notebook import not_a_notebook
from grader.service.errors import ServiceError

SAVE_AS = "upload the .ipynb file as Jupyter or Colab saves it (File > Download > .ipynb)"


class SubmissionIn(BaseModel):
    """The JSON form of POST /v1/submissions."""

    model_config = ConfigDict(extra="forbid")

    student_id: Annotated[str, Field(min_length=1, max_length=255)]
    assignment: Annotated[str, Field(min_length=1, description="a rubric id this server grades")]
    notebook: str = Field(description="the .ipynb file, base64")
    model: Optional[str] = Field(None, description="the exported model (model.pt2), base64: for evaluate-mode "
                                                   "assignments")
    callback_url: Optional[str] = Field(None, description="where the signed result is POSTed when grading ends")


@dataclass(frozen=True)
class Upload:
    student: str
    assignment: str
    notebook: bytes
    model: Optional[bytes] = None
    callback_url: Optional[str] = None
    lti: Optional[dict] = None  # grade passback: set from an LTI launch only, never from a request body


def _unprocessable(code: str, what: str, where: str, fix: str) -> ServiceError:
    return ServiceError(422, code, what, where=where, fix=fix)


def _decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _unprocessable("invalid_base64", "not valid base64", where,
                             "encode the file's bytes with standard base64 (RFC 4648), no line breaks") from None


def check_student(student: str, where: str = "student_id") -> str:
    student = student.strip()
    if not student or len(student) > 255 or any(ord(c) < 32 or c in "/\\" for c in student):
        raise _unprocessable("invalid_student", f"student id {student[:60]!r} is not usable", where,
                             "send the LMS's user id: 1 to 255 characters, no slashes or control characters")
    return student


def check_callback(url: Optional[str], where: str = "callback_url") -> Optional[str]:
    if url in (None, ""):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _unprocessable("invalid_callback", f"{url[:200]!r} is not an http(s) URL", where,
                             "give the full URL the result should be POSTed to, e.g. https://lms.example/hooks/grade")
    return url


def check_notebook(data: bytes, where: str = "notebook") -> None:
    """A notebook that is JSON and valid nbformat (v4 after upgrade); otherwise 422 saying what and where."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unprocessable("invalid_notebook", f"the notebook is not UTF-8 text (byte {exc.start})", where,
                             SAVE_AS) from None
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise _unprocessable("invalid_notebook", "the notebook nests arrays or objects too deeply to be a notebook",
                             where, SAVE_AS) from None
    except json.JSONDecodeError as exc:
        raise _unprocessable("invalid_notebook", f"the notebook is not valid JSON: {exc.msg} at line {exc.lineno}, "
                             f"column {exc.colno}", where, SAVE_AS) from None
    problem = not_a_notebook(parsed)
    if problem:
        raise _unprocessable("invalid_notebook", f"the notebook is JSON, but not a Jupyter notebook: {problem}", where,
                             SAVE_AS)
    try:
        with warnings.catch_warnings():  # cells without ids (older Jupyter, Colab) are fine: nbformat adds them
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            notebook = nbformat.reads(text, as_version=4)
            nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path).lstrip(".")
        raise _unprocessable("invalid_notebook", f"the notebook is JSON but not a valid notebook (nbformat): "
                             f"{path + ': ' if path else ''}{exc.message}", where, SAVE_AS) from None
    except Exception as exc:  # nbformat raises assorted errors for JSON that is no notebook at all
        raise _unprocessable("invalid_notebook", f"the notebook is JSON but not a notebook ({exc})", where,
                             SAVE_AS) from None


def check_model(data: Optional[bytes], where: str = "model") -> Optional[bytes]:
    if not data:
        return None
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise _unprocessable("invalid_model", "the model is not an exported program (.pt2 is a zip archive)", where,
                             "export it in the notebook with torch.export.save(torch.export.export(model, (x,)), "
                             "'model.pt2') and upload that file")
    return data


def _no_passback() -> ServiceError:
    """Our AGS token goes where the line item is, so line items come from verified launches, never from a body."""
    return _unprocessable("invalid_submission", "lti: a request cannot ask for LTI grade passback", "lti",
                          "leave `lti` out: scores go back to the LMS only for notebooks handed in through an LTI "
                          "launch; use callback_url to receive the result")


def from_json(body: bytes) -> Upload:
    try:
        raw = json.loads(body)
    except RecursionError:
        raise _unprocessable("invalid_json", "the body nests arrays or objects too deeply to be a submission",
                             "body", "send a flat JSON object: {student_id, assignment, notebook, ...}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _unprocessable("invalid_json", f"the body is not valid JSON ({exc})", "body",
                             "send Content-Type: application/json with a JSON object, or a multipart upload") from None
    if isinstance(raw, dict) and "lti" in raw:
        raise _no_passback()
    try:
        payload = SubmissionIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        what = {"missing": "missing", "extra_forbidden": "not a field of a submission"}.get(first["type"], first["msg"])
        raise _unprocessable("invalid_submission", f"{where}: {what}", where,
                             "send {student_id, assignment, notebook (base64), model?, callback_url?}; "
                             "the schema is at /docs") from None
    return Upload(student=check_student(payload.student_id), assignment=payload.assignment,
                  notebook=_decode(payload.notebook, "notebook"),
                  model=check_model(_decode(payload.model, "model") if payload.model else None),
                  callback_url=check_callback(payload.callback_url))


async def _file_bytes(value: Any) -> Optional[bytes]:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return await value.read()  # an UploadFile


async def from_form(form, *, student: Optional[str] = None) -> Upload:
    """A multipart upload (API or page). `student` is given when the page already knows who it is (LTI)."""
    notebook = await _file_bytes(form.get("notebook"))
    if not notebook:
        raise _unprocessable("missing_notebook", "no notebook in the upload", "notebook",
                             "attach the .ipynb file as the form field `notebook`")
    if "lti" in form:
        raise _no_passback()
    for name in ("student_id", "assignment") if student is None else ("assignment",):
        if not form.get(name):
            raise _unprocessable("invalid_submission", f"{name}: missing", name, f"add the form field `{name}`")
    return Upload(student=check_student(student if student is not None else form["student_id"]),
                  assignment=form["assignment"], notebook=notebook,
                  model=check_model(await _file_bytes(form.get("model"))),
                  callback_url=check_callback(form.get("callback_url")))

"""Request bodies: read with a size limit (413 beyond it), at most a few at once (503 beyond that), hashed for
the signature as they arrive; and multipart parsed from bytes already read, text fields checked to be text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from grader.service.errors import ServiceError
from grader.service.signing import Pending

# the upload and self-check fields that are not files
TEXT_FIELDS = ("student_id", "assignment", "callback_url", "lti", "launch", "depth", "link")
RETRY_AFTER_SECONDS = 5


class BodyReads:
    """At most `limit` request bodies are read at once: memory stays under `limit` x the largest body whatever
    the number of connections. The excess is refused at once (503 with Retry-After) rather than queued, so
    that waiting connections hold no memory either."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0  # one event loop: no lock needed between the check and the count

    @contextmanager
    def slot(self, where: str) -> Iterator[None]:
        if self.active >= self.limit:
            raise ServiceError(503, "busy", f"{self.active} uploads are being received, the most this server takes "
                               "at once", where=where,
                               fix=f"send it again in {RETRY_AFTER_SECONDS} s (the Retry-After header)",
                               headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def _too_large(size: str, limit: int) -> ServiceError:
    return ServiceError(413, "too_large", f"the request body is {size}; this server accepts at most {limit:,} bytes",
                        where="body", fix="send the notebook without large outputs (clear the outputs of cells that "
                                          "print images or long logs) or ask the operator to raise --max-body")


async def read_body(request: Request, limit: int, *, signed: Optional[Pending] = None) -> bytes:
    """The raw body, refused with 413 beyond `limit` bytes without keeping more than the limit in memory;
    fed to `signed` as it arrives and checked against it at the end (401 for a body that does not match)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{int(declared):,} bytes", limit)
    reads: BodyReads = request.app.state.body_reads
    with reads.slot(request.url.path):
        buffer = bytearray()
        async for chunk in request.stream():
            if len(buffer) + len(chunk) > limit:
                raise _too_large(f"over {limit:,} bytes", limit)
            buffer += chunk
            if signed is not None:
                signed.update(chunk)
    if signed is not None:
        signed.verify()
    return bytes(buffer)


async def parse_form(request: Request, body: bytes, limit: int):
    """Parse a multipart (or urlencoded) body that was already read (and checked against its signature)."""
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}
    try:
        form = await Request(request.scope, replay).form(max_files=4, max_fields=32, max_part_size=limit)
    except HTTPException as exc:  # starlette's word for a malformed multipart body
        raise ServiceError(400, "invalid_multipart", f"the multipart body cannot be read: {exc.detail}", where="body",
                           fix="send multipart/form-data as an HTTP client library builds it (with its boundary)") \
            from None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile) and name in TEXT_FIELDS:
            raise ServiceError(422, "field_not_text", f"the field `{name}` was sent as a file; it is a text field",
                               where=name, fix=f"send `{name}` as a plain form field; only notebook and model "
                                               "are files")
    return form

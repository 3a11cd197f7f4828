"""Request bodies: read with a size limit (413 beyond it), and multipart parsed from bytes already read."""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException

from grader.service.errors import ServiceError


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 beyond `limit` bytes without keeping more than the limit in memory."""
    def too_large(size: str) -> ServiceError:
        return ServiceError(413, "too_large", f"the request body is {size}; this server accepts at most "
                            f"{limit:,} bytes", where="body",
                            fix="send the notebook without large outputs (clear the outputs of cells that print "
                                "images or long logs) or ask the operator to raise --max-body")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"{int(declared):,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_form(request: Request, body: bytes, limit: int):
    """Parse a multipart (or urlencoded) body that was already read, and checked against its signature."""
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}
    try:
        return await Request(request.scope, replay).form(max_files=4, max_fields=32, max_part_size=limit)
    except HTTPException as exc:  # starlette's word for a malformed multipart body
        raise ServiceError(400, "invalid_multipart", f"the multipart body cannot be read: {exc.detail}", where="body",
                           fix="send multipart/form-data as an HTTP client library builds it (with its boundary)") \
            from None

"""`grade serve`: the LMS front door. A thin ASGI front end over the grading API (grader.api).

    settings.py   every option of the service, defined once; the webhook secret
    errors.py     errors a caller can cause: status, what, where, what to do
    signing.py    HMAC-SHA256 request signatures (checked on requests, made on callbacks)
    store.py      the durable queue: jobs, leases, deliveries, LTI state (SQLite in WAL mode)
    lanes.py      which job is claimed next: self-checks first, a fair share per assignment, the GPU lane
    bodies.py     reading a request body within the size limit; multipart from bytes already read
    intake.py     a request body -> an upload (JSON with base64, or multipart), checked before queuing
    assignments.py rubric ids -> rubrics, loaded once from --rubrics
    grading.py    the one call into grader.api: a job's files -> score sheet and reports
    workers.py    grading threads that claim jobs with a lease (the GPU lane's only on a node with a GPU)
    outbox.py     signed callbacks and LTI grade passback, retried, never in the queue's way
    lti/          LTI 1.3: platform registrations, our key, launch, Assignment and Grade Services
    metrics.py    Prometheus metrics (by status and by lane)
    core.py       accepting a submission and describing a job (shared by the API, pages and LTI)
    pages.py      the Jinja2 pages (templates/), no JavaScript
    routes_*.py   HTTP: /v1 API, the upload and report pages, the LTI endpoints
    app.py        the FastAPI app; server.py runs it on uvicorn
"""

from grader.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "serve"]


def serve(settings: ServiceSettings) -> int:
    from grader.service.server import serve as run  # uvicorn and FastAPI load only when a server starts

    return run(settings)

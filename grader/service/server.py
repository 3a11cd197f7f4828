"""Running the app: load and check everything first (a bad rubric or platform file exits with code 2 before
the port opens), bind the port, then serve on uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from typing import Optional

import uvicorn

from grader.errors import GraderError
from grader.service.app import create_app
from grader.service.assignments import Assignments
from grader.service.core import Service
from grader.service.lti.config import load_registrations, no_registrations
from grader.service.lti.keys import ToolKey, new_pem
from grader.service.settings import ServiceSettings
from grader.service.store import open_store

LTI_KEY = "lti-key"  # our RSA key's name among the store's shared values (a PostgreSQL store without --key)


_BIND_FAILURES: dict[Optional[int], tuple[str, str]] = {
    errno.EADDRINUSE: ("port {port} is already in use on {host}: another program (or another grade serve) "
                       "listens there",
                       "stop that program (`ss -ltnp 'sport = :{port}'` names it), or choose another --port "
                       "(--port 0 takes any free port and the start line says which)"),
    errno.EACCES: ("not allowed to listen on port {port} (ports below 1024 need root)",
                   "use a port above 1023, e.g. --port 8000, behind a reverse proxy that listens on 443"),
    errno.EADDRNOTAVAIL: ("{host} is not an address of this machine",
                          "use --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every interface)"),
}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # the host's state or the options, not a bug: say which and what to change
        sock.close()
        what, fix = _BIND_FAILURES.get(exc.errno, ("cannot listen there ({reason})", "check --host and --port"))
        about = {"host": host, "port": port, "reason": exc.strerror or exc}
        raise GraderError(what.format(**about), where=f"--host {host} --port {port}", fix=fix.format(**about)) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(settings: ServiceSettings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    assignments = Assignments(settings.rubrics, settings.selfcheck_keys)
    registrations = load_registrations(settings.lti) if settings.lti else no_registrations()
    store = open_store(settings.store)
    try:
        key = (ToolKey.load_or_create(settings.key_file) if settings.key_file else
               ToolKey.from_pem(store.shared_value(LTI_KEY, new_pem), f"{store.where}: the shared LTI key"))
        sock = _bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        base_url = settings.public_url or f"http://{host}:{port}"
        service = Service(settings, store, assignments, registrations, key, base_url)
        server = uvicorn.Server(uvicorn.Config(create_app(service), log_level=settings.log_level,
                                               timeout_graceful_shutdown=settings.stop_grace,  # type: ignore[arg-type]  # uvicorn says int; any seconds work
                                               server_header=False))
        print(f"grade serve: listening on http://{host}:{port} (public URL {base_url}); "
              f"{settings.workers} worker(s){' (and the GPU lane)' if service.gpu else ''}; "
              f"assignments: {', '.join(sorted(a.id for a in assignments))}",
              file=sys.stderr, flush=True)
        # uvicorn stops gracefully on SIGTERM and then raises the signal again with our handler in place:
        # a stop asked for is a clean exit (0), which is what systemd and container runtimes expect.
        signal.signal(signal.SIGTERM, lambda *_: None)
        server.run(sockets=[sock])
    finally:
        store.close()
    return 0

"""Every option of `grade serve`, defined once, with its default; the webhook secret and where it may come from."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from grader.errors import GraderError
from grader.service.store import is_url

SECRET_ENV = "GRADER_WEBHOOK_SECRET"
MIN_SECRET_BYTES = 16
SIGNATURE_WINDOW_SECONDS = 300  # the 5 minutes: older (or that far in the future) is refused
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


@dataclass(frozen=True)
class RateLimit:
    """At most `count` accepted submissions per student in any `seconds`."""

    count: int = 10
    seconds: float = 600.0

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


@dataclass(frozen=True)
class ServiceSettings:
    secret: bytes = field(repr=False)
    rubrics: Path = Path("rubrics")
    store: Union[Path, str] = Path("grader.db")  # a SQLite file, or a postgresql:// URL that several servers share
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the line "listening on ..." says which)
    workers: int = 1  # grading threads; each claims one job at a time
    gpu: Optional[bool] = None  # this node takes jobs whose rubric requires a GPU; None: when it has /dev/nvidiaN
    out: Optional[Path] = None  # reports; default: beside a SQLite store, <store stem>-reports/; a URL store needs it
    public_url: Optional[str] = None  # how browsers and LMSs reach us; default http://host:port
    max_body_bytes: int = 16 << 20  # a notebook with outputs plus an exported model
    max_body_reads: int = 4  # bodies received at once; memory for bodies stays under this x max_body_bytes
    frame_ancestors: tuple[str, ...] = ()  # origins that may frame our pages (CSP); default: the LTI platforms'
    rate: RateLimit = RateLimit()
    selfcheck_keys: Optional[Path] = None  # YAML {assignment id: self-check key}: who may self-check without LTI
    selfcheck_rate: RateLimit = RateLimit()  # self-checks per key and address (or per LTI user) per period
    lease_seconds: float = 30.0  # a worker renews its lease every third of this while it grades
    max_attempts: int = 3  # a job interrupted this many times (it may crash the server) fails instead
    stop_grace: float = 10.0  # on SIGTERM: seconds for running jobs to finish before they go back to the queue
    callback_attempts: int = 6  # per callback or grade passback
    callback_backoff: float = 0.5  # seconds before the first retry, doubling up to 30 s
    callback_timeout: float = 10.0
    lti: Optional[Path] = None  # platform registrations (YAML)
    key: Optional[Path] = None  # our RSA key for LTI; default beside a SQLite store, or in a PostgreSQL store
    open_uploads: bool = False  # GET / accepts uploads from anyone who types a student id
    data: Optional[str] = None  # MNIST folder for the grading runs (default: $GRADER_DATA or the cache)
    executor: str = "local"  # where jobs run: "local" (a pool of `workers` slots) or "ray" (Ray tasks)
    address: Optional[str] = None  # the Ray cluster for executor "ray" (None: a local Ray for the server's life)
    log_level: str = "info"

    def __post_init__(self) -> None:
        for option, value, least in (("--workers", self.workers, 1), ("--lease", self.lease_seconds, 1),
                                     ("--callback-retries", self.callback_attempts, 1),
                                     ("--max-body", self.max_body_bytes, 1024),
                                     ("--max-uploads", self.max_body_reads, 1)):
            if value < least:
                raise GraderError(f"{option} {value:g} is too small", where=option, fix=f"give at least {least}")
        if self.shared and self.out is None:
            raise GraderError("not given: a PostgreSQL store needs the reports folder every server writes to "
                              "and reads from", where="--out",
                              fix="mount one folder on every node at the same path (NFS, CephFS, ...) and pass it as "
                                  "--out DIR (docs/service.md, several nodes)")

    @property
    def shared(self) -> bool:
        """The store is a PostgreSQL URL: other servers may use it at the same time."""
        return is_url(self.store)

    @property
    def reports(self) -> Path:  # shared servers have an --out (__post_init__)
        return self.out or self._store_file.with_name(self._store_file.stem + "-reports")

    @property
    def scratch(self) -> Path:
        """Each job's files while it is graded; emptied at every start (a SIGKILL leaves them behind). This
        server's own: beside a SQLite store (one server per file), else in this machine's temporary folder, named
        after the process (servers sharing a PostgreSQL store, on one machine or several, never share it)."""
        if self.shared:
            return Path(tempfile.gettempdir()) / f"grade-serve-scratch-{os.getpid()}"
        return self._store_file.with_name(self._store_file.stem + "-scratch")

    @property
    def key_file(self) -> Optional[Path]:
        """None: the key is kept in the (PostgreSQL) store, shared by its servers."""
        if self.key or self.shared:
            return self.key
        return self._store_file.with_name(self._store_file.stem + "-lti-key.pem")

    @property
    def _store_file(self) -> Path:
        """A SQLite store's file, beside which its reports, scratch and LTI key go (a PostgreSQL store is a URL)."""
        return Path(self.store)


def load_secret(secret_file: Optional[Path], environ: Optional[Mapping[str, str]] = None) -> bytes:
    """The webhook secret from --secret-file, else $GRADER_WEBHOOK_SECRET; never from the command line
    (it would show in `ps` and in shell history)."""
    env = os.environ if environ is None else environ
    if secret_file is not None:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise GraderError("secret file not found", where=str(secret_file),
                              fix=f"create it with: {MAKE_SECRET} > {secret_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GraderError(f"cannot read the secret file ({exc.__class__.__name__})", where=str(secret_file),
                              fix="make it a readable UTF-8 text file holding one line, the secret") from None
        where = str(secret_file)
    elif env.get(SECRET_ENV):
        secret, where = env[SECRET_ENV].strip(), f"${SECRET_ENV}"
    else:
        raise GraderError("no webhook secret: requests could not be checked", where="grade serve",
                          fix=f"set {SECRET_ENV} or pass --secret-file FILE; make one with: {MAKE_SECRET}")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise GraderError(f"the webhook secret is {len(secret.encode())} bytes; at least {MIN_SECRET_BYTES} are needed",
                          where=where, fix=f"use a long random secret: {MAKE_SECRET}")
    return secret.encode()


def parse_rate(text: str, option: str = "--rate") -> RateLimit:
    """'10/600' or '10/10m' or '30/1h': submissions per student (or self-checks per key) per period."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or int(match[1]) < 1 or float(match[2]) <= 0:
        raise GraderError(f"{option} {text!r} is not COUNT/PERIOD", where=option,
                          fix="write it like 10/600 (seconds), 10/10m or 30/1h")
    return RateLimit(int(match[1]), float(match[2]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[3]])

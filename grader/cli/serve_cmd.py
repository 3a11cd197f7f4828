"""`grade serve`: the webhook, LTI 1.3 tool and upload page for LMSs (see docs/service.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.api import EXECUTORS
from grader.service import ServiceSettings, serve
from grader.service.settings import SECRET_ENV, load_secret, parse_rate
from grader.service.store import is_url
from grader.settings import parse_size

HELP = f"""\
Serve the grader to LMSs and students: a signed webhook (POST /v1/submissions), an
LTI 1.3 tool (launch and grade passback), and an upload page; jobs wait in a durable
queue (a SQLite file, or PostgreSQL that several servers share) and survive restarts.
OpenAPI docs at /docs.

The webhook secret comes from ${SECRET_ENV} or --secret-file, never from the
command line (it would show in `ps`). An `execute` rubric's grading environment
must be built first (`grade env build RUBRIC`, once): the server does not start
without it, and does not install packages itself.

Examples
  {SECRET_ENV}=$(cat secret) grade serve --rubrics rubrics/ --store grader.db --workers 2
  grade serve --store postgresql://grader@db.example.edu/grader --out /mnt/grader-reports  # each node
  grade serve --secret-file /etc/grader/secret --lti platforms.yaml \\
      --public-url https://grader.example.edu --host 127.0.0.1 --port 8000
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="serve the webhook, LTI 1.3 tool and upload page (LMSs)",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = ServiceSettings(secret=b"")
    parser.add_argument("--host", default=d.host, help=f"address to listen on (default: {d.host})")
    parser.add_argument("--port", type=int, default=d.port, help=f"port (default: {d.port}; 0: any free port)")
    parser.add_argument("--rubrics", type=Path, default=d.rubrics, metavar="DIR",
                        help=f"folder of rubric .yaml files; each rubric id is an assignment (default: {d.rubrics})")
    parser.add_argument("--store", default=str(d.store), metavar="FILE|URL",
                        help=f"the job store: a SQLite file (one server; default: {d.store}) or a PostgreSQL URL, "
                             f"postgresql://USER:PASSWORD@HOST/DB, that several servers share (needs --out on a "
                             f"folder every server mounts; pip install '.[postgres]'; docs/service.md)")
    parser.add_argument("--workers", type=int, default=d.workers, metavar="N",
                        help=f"submissions graded at once (default: {d.workers})")
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                        help="whether this node takes the jobs whose rubric requires a GPU (`limits: {gpu: "
                             "required}`); other jobs run on any node (default: --gpu when /dev/nvidiaN exist; with "
                             "--executor ray, say --gpu when the cluster has GPUs)")
    parser.add_argument("--secret-file", type=Path, metavar="FILE", help=f"file holding the webhook secret "
                        f"(default: ${SECRET_ENV})")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where reports are written (default: beside a SQLite store, <store>-reports/); with a "
                             "PostgreSQL store, a folder every server mounts at this path")
    parser.add_argument("--public-url", metavar="URL",
                        help="how LMSs and browsers reach this server, e.g. https://grader.example.edu "
                             "(default: http://HOST:PORT); LTI redirect and JWKS URLs are built from it")
    parser.add_argument("--lti", type=Path, metavar="FILE", help="LTI 1.3 platform registrations (YAML)")
    parser.add_argument("--key", type=Path, metavar="FILE",
                        help="our RSA key for LTI (default: beside a SQLite store, created on first start; with a "
                             "PostgreSQL store, kept in the store and shared by its servers)")
    parser.add_argument("--open-uploads", action="store_true",
                        help="let GET / take uploads from anyone who types a student id (labs, or behind an "
                             "authenticating proxy); without it uploads come through the signed API or an LTI launch")
    parser.add_argument("--max-body", default="16M", metavar="SIZE",
                        help="largest request body, e.g. 16M (default: 16M); larger gets 413")
    parser.add_argument("--max-uploads", type=int, default=d.max_body_reads, metavar="N",
                        help=f"request bodies received at once (default: {d.max_body_reads}); more gets 503 with "
                             f"Retry-After, so memory for bodies stays under N x --max-body")
    parser.add_argument("--frame-ancestors", nargs="+", default=list(d.frame_ancestors), metavar="ORIGIN",
                        help="origins whose pages may show ours in an iframe, e.g. https://school.instructure.com, "
                             "besides ourselves (default: the --lti platforms' issuer and login origins)")
    parser.add_argument("--rate", default=f"{d.rate.count}/{d.rate.seconds:g}", metavar="N/SECONDS",
                        help=f"submissions accepted per student per period and per source (API, upload page, LTI), "
                             f"e.g. 10/10m (default: {d.rate}); "
                             f"more gets 429")
    parser.add_argument("--selfcheck-keys", type=Path, metavar="FILE",
                        help="YAML file of `ASSIGNMENT_ID: KEY` lines: each assignment's self-check key, which lets "
                             "students check a notebook at POST /v1/selfcheck (static or dry run, no grade) from "
                             "check(server=..., key=...); without it, self-checks come only from LTI launches")
    parser.add_argument("--selfcheck-rate", default=f"{d.selfcheck_rate.count}/{d.selfcheck_rate.seconds:g}",
                        metavar="N/SECONDS", help=f"self-checks per key and address (or per LTI user) per period "
                                                  f"(default: {d.selfcheck_rate}); more gets 429")
    parser.add_argument("--lease", type=float, default=d.lease_seconds, metavar="S",
                        help=f"a worker's lease on a job, renewed while it grades (default: {d.lease_seconds:g})")
    parser.add_argument("--callback-retries", type=int, default=d.callback_attempts, metavar="N",
                        help=f"attempts per callback or grade passback (default: {d.callback_attempts})")
    parser.add_argument("--callback-backoff", type=float, default=d.callback_backoff, metavar="S",
                        help=f"first wait between attempts, doubling up to 30 s (default: {d.callback_backoff:g})")
    parser.add_argument("--data", metavar="DIR", help="MNIST folder (default: $GRADER_DATA, else the cache)")
    parser.add_argument("--executor", choices=EXECUTORS, default=d.executor,
                        help="where jobs run: local (this machine, default) or ray (each job a Ray task; needs "
                             "pip install '.[ray]'; see docs/scale-out.md)")
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster for --executor ray: auto or ray://HOST:10001 (default: start a local "
                             "Ray with this machine's cores while the server runs)")
    parser.add_argument("--log-level", default=d.log_level, choices=["debug", "info", "warning", "error"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = ServiceSettings(
        secret=load_secret(args.secret_file), rubrics=args.rubrics,
        store=args.store if is_url(args.store) else Path(args.store), host=args.host, port=args.port,
        workers=args.workers, gpu=args.gpu, out=args.out, public_url=args.public_url, lti=args.lti, key=args.key,
        open_uploads=args.open_uploads, max_body_bytes=parse_size(args.max_body, "--max-body"),
        max_body_reads=args.max_uploads, frame_ancestors=tuple(args.frame_ancestors), rate=parse_rate(args.rate),
        selfcheck_keys=args.selfcheck_keys, selfcheck_rate=parse_rate(args.selfcheck_rate, "--selfcheck-rate"),
        lease_seconds=args.lease, callback_attempts=args.callback_retries,
        callback_backoff=args.callback_backoff, data=args.data, executor=args.executor, address=args.address,
        log_level=args.log_level)
    return serve(settings)

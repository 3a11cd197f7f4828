"""`grade env build|path`: the grading environment a rubric's notebooks run in."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.api import load_rubric
from grader.env.build import build, envs_dir, plan, terminal_bar
from grader.env.spec import COMPAT_PROFILES, DEFAULT_ENVIRONMENT, DEFAULT_PACKAGES

HELP = f"""\
The student's kernel runs in a grading environment: a venv per assignment, separate
from the grader's own, declared in the rubric and built once into a cache keyed by
its content hash ({envs_dir()}, or $GRADER_ENVS).

  environment:
    packages: [keras>=3, pandas==2.2.3]   # added to the default packages (a pin wins)
    requirements: requirements.txt        # or a pip requirements file beside the rubric
    compat: [torch-1.x, keras-2]          # shims for old APIs: {", ".join(COMPAT_PROFILES)}

Default packages: {", ".join(DEFAULT_PACKAGES)}.
What the grader's own Python already has at the asked version (torch, ...) is used
from there; the rest is installed with uv when it is on PATH, else pip.

Examples
  grade env build mnist-s3             build the environment of a shipped rubric (a no-op once cached)
  grade env build my-rubric.yaml --force
  grade env path mnist-s3              where it is (exit 1 if it is not built yet)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("env", help="build the grading environment a rubric's notebooks run in",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=lambda _args: _usage(parser))
    actions = parser.add_subparsers(dest="env_command", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("rubric", metavar="RUBRIC", nargs="?",
                        help="a rubric file or shipped name (none: the default environment)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    build_cmd = actions.add_parser("build", parents=[common], help="build it into the cache (a no-op when there)",
                                   description="Build the rubric's grading environment into the cache, with a "
                                               "progress bar; nothing to do when it is cached already.")
    build_cmd.add_argument("--force", action="store_true", help="build again even if it is cached")
    build_cmd.set_defaults(handler=run_build)
    path = actions.add_parser("path", parents=[common], help="print where it is; exit 1 when not built yet",
                              description="Print the environment's folder; exit 1 when it is not built yet.")
    path.set_defaults(handler=run_path)


def _spec(args: argparse.Namespace):
    if args.rubric is None:
        return DEFAULT_ENVIRONMENT, None, "the default environment"
    rubric = load_rubric(args.rubric)
    source = Path(rubric.source)
    return rubric.environment or DEFAULT_ENVIRONMENT, source.parent if source.is_file() else None, args.rubric


def run_build(args: argparse.Namespace) -> int:
    spec, folder, name = _spec(args)
    cached = plan(spec, folder).built and not args.force
    with terminal_bar() as report:
        env = build(spec, folder, report=report, force=args.force)
    payload = {"path": str(env.path), "key": env.key, "cached": cached, "build_seconds": env.build_seconds,
               "installer": env.installer, "compat": list(env.compat), "packages": dict(env.packages)}
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif cached:
        print(f"{name}: already built in {env.path} (--force builds it again)")
    else:
        print(f"{name}: built in {env.path} in {env.build_seconds:.1f} s ({env.installer or 'nothing to install'})")
    return 0


def run_path(args: argparse.Namespace) -> int:
    spec, folder, name = _spec(args)
    env = plan(spec, folder)
    if args.json:
        json.dump({"path": str(env.path), "built": env.built}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif env.built:
        print(env.path)
    else:
        print(f"{name}: not built yet (it would be {env.path})\n"
              f"  -> run `grade env build {args.rubric or ''}`".rstrip(),
              file=sys.stderr)
    return 0 if env.built else 1


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2

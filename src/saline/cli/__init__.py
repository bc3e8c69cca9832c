"""saline's command line. Thin: resolve settings, parse options, call the library, print.

One module per command group (model, render, host, images, stack). ``main`` is the only
place that turns failures into exit codes:

* a :class:`~saline.errors.SalineError` (a user's mistake, a failed command) becomes one
  message and its exit code;
* an ``OSError`` or any unexpected exception becomes one line plus the path of a debug log
  holding the traceback (under saline's state folder); ``SALINE_DEBUG=1`` prints it too;
* Ctrl-C stops the processes saline started, lets the running command clean up, and
  exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TextIO

from .. import __version__
from ..errors import SalineError
from ..runtime.process import terminate_all
from ..settings import Settings, resolve
from . import day2, guest, host, images, kube, model, render, stack
from .common import Command, Context

#: Exit codes scripts can rely on (docs/cli.md).
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in saline, not the user's mistake


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saline",
        description="One model of an OpenStack deployment: compile it, explain it, build "
        "and run it.",
        epilog="Run 'saline COMMAND --help' for a command's options. Settings come from "
        "flags, then SALINE_* variables, then saline.toml (docs/configuration.md).",
    )
    parser.add_argument("--version", action="version", version=f"saline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    model.register(sub)
    render.register(sub)
    day2.register(sub)
    host.register(sub)
    images.register(sub)
    guest.register(sub)
    stack.register(sub)
    kube.register(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from this command line, the environment and the project file."""
    flags = {name: getattr(args, name, None) for name in ("model", "registry", "stack", "target")}
    flags["formulas"] = tuple(getattr(args, "formulas", None) or ())
    return resolve(flags, os.environ, os.getcwd())


def _debug_log(state_dir: str | None, text: str) -> str | None:
    """Write a traceback where the user can find it; its path (None if it cannot be)."""
    base = state_dir or os.path.join(os.path.expanduser("~"), ".local", "state", "saline")
    folder = os.path.join(base, "logs")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        path = os.path.join(folder, time.strftime("error-%Y%m%d-%H%M%S") + f"-{os.getpid()}.log")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        # Keep the 20 newest.
        logs = sorted(f for f in os.listdir(folder) if f.startswith("error-"))
        for old in logs[:-20]:
            os.remove(os.path.join(folder, old))
    except OSError:
        return None
    return path


def _error(err: TextIO, text: str, color: bool) -> None:
    tty = color and getattr(err, "isatty", lambda: False)()
    label = "\033[31merror:\033[0m " if tty else "error: "
    print(label + text, file=err)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    err = sys.stderr
    debug = bool(os.environ.get("SALINE_DEBUG"))
    color = not os.environ.get("NO_COLOR")
    state_dir: str | None = None
    collecting = gc.isenabled()  # a model command turns the cycle collector off
    try:
        settings = settings_from(args)
        state_dir = settings.state_dir
        return func(args, Context(settings, sys.stdout, err))
    except SalineError as e:
        if debug:
            traceback.print_exc()
        _error(err, str(e), color)
        return e.exit_code
    except KeyboardInterrupt:
        terminate_all()
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`saline ... | head`): not an error. Silence the final flush.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except Exception as e:
        text = traceback.format_exc()
        if debug:
            print(text, file=err, end="")
        log = _debug_log(state_dir, text)
        where = f" (traceback: {log})" if log else ""
        if isinstance(e, OSError):
            what = e.strerror or str(e)
            path = f": {e.filename}" if e.filename else ""
            _error(err, f"{what}{path}{where}", color)
            return 1
        _error(err, f"internal error, a bug in saline: {type(e).__name__}: {e}{where}", color)
        return EXIT_INTERNAL
    finally:
        if collecting:
            gc.enable()


__all__ = ["build_parser", "main"]

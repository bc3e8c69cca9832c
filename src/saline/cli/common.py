"""What every command shares: the settings-backed context, options, output and colour."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import SettingsError
from ..output import write
from ..settings import Settings

if TYPE_CHECKING:
    from ..build.resolve import PackageResolver
    from ..formulas import FormulaSet
    from ..model import Model

Command = Callable[[argparse.Namespace, "Context"], int]
FORMATS = ("yaml", "json")


@dataclass
class Context:
    """The resolved settings, and the model and formulas loaded from them on demand."""

    settings: Settings
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    _resolver: PackageResolver | None = None

    def model(self) -> Model:
        from ..model import load_model
        from ..model.cache import FileCache

        root = self.settings.model
        if root is None:
            here = os.getcwd()
            if os.path.isdir(os.path.join(here, "nodes")):
                root = here
            else:
                raise SettingsError(
                    f"no model named, and the current folder ({here}) has no nodes/ folder: "
                    'name one with --model DIR, SALINE_MODEL=DIR, or `model = "DIR"` in a '
                    "saline.toml here or in a parent folder"
                )
        cache = FileCache(self.settings.cache_dir) if self.settings.cache_dir else None
        return load_model(root, cache=cache)

    def formulas(self, model: Model) -> FormulaSet:
        from ..formulas import FormulaSet, default_formula_dirs

        dirs = list(self.settings.formulas) or default_formula_dirs(model.root)
        return FormulaSet(dirs)

    def resolver(self, refresh: bool = False) -> PackageResolver:
        """Which packages each image installs (its tag), for this command: one per run,
        so apt's lists are read at most once. Progress goes to stderr."""
        from ..images import package_resolver

        if self._resolver is None or refresh:
            self._resolver = package_resolver(
                self.settings, refresh=refresh, progress=self.progress("text")
            )
        return self._resolver

    def progress(self, fmt: str) -> Callable[[str], None]:
        """Progress lines on stderr (under every format: stdout stays the data)."""

        def show(line: str) -> None:
            print(line, file=self.err, flush=True)

        return show

    def color(self, text: str, code: str, stream: TextIO | None = None) -> str:
        stream = stream or self.out
        if not self.settings.color or not getattr(stream, "isatty", lambda: False)():
            return text
        return f"\033[{code}m{text}\033[0m"

    def emit(self, data: Any, fmt: str) -> None:
        """Data on stdout: JSON (for scripts) or YAML (for people)."""
        # Streamed: a 1000-node inventory is never held as one string (peak memory).
        write(data, "json" if fmt == "json" else "yaml", self.out)


# -- options --------------------------------------------------------------------------------


def add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="DIR",
        help="model folder with classes/ and nodes/ (default: $SALINE_MODEL, else `model` "
        "in saline.toml, else the current folder)",
    )


def add_formulas_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--formulas",
        metavar="DIR",
        action="append",
        help="formula folder (repeatable; default: $SALINE_FORMULAS, else `formulas` in "
        "saline.toml, else MODEL/formulas, else the formulas shipped with saline)",
    )


def add_registry_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        metavar="HOST:PORT",
        help="image registry (default: $SALINE_REGISTRY, else `registry` in saline.toml, "
        "else the local 127.0.0.1:5000)",
    )


def add_stack_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stack",
        metavar="NAME",
        help="the stack's (compose project's) name (default: $SALINE_STACK, else `stack` "
        "in saline.toml, else the model folder's name)",
    )


def add_format(
    p: argparse.ArgumentParser, choices: Sequence[str] = FORMATS, default: str = "yaml"
) -> None:
    p.add_argument(
        "--format", choices=choices, default=default, help=f"output format (default: {default})"
    )


def command(
    sub: Any, name: str, help: str, description: str, func: Command, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand parser wired to ``func``."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description, **kwargs)
    p.set_defaults(func=func)
    return p


def releases_table(history: list[dict[str, Any]]) -> str:
    """``saline releases`` as text: one line per recorded release, ``*`` on the one
    running now (``entry["current"]``), the model folder and commit it came from."""
    lines = [f"{'ID':<14}{'TIME':<22}{'OUTCOME':<10}SOURCE"]
    for entry in history:
        src = entry.get("source") or {}
        rev = src.get("revision") or src.get("head") or ""
        shown = f"{src.get('model', '')} {rev[:12]}".strip()
        mark = " *" if entry["current"] else ""
        lines.append(
            f"{entry.get('id', '?') + mark:<14}{entry.get('time', '?'):<22}"
            f"{entry.get('outcome', '?'):<10}{shown}"
        )
    return "\n".join(lines) + "\n"

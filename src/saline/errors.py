"""One exception hierarchy for saline.

Every error a user can cause derives from :class:`SalineError`; the CLI prints its
``str()`` as one message and exits non-zero, and never shows a traceback for it.
Errors about the model carry where they happened (file relative to the model, line,
node, key path) so the message can point at the user's YAML.
"""

from __future__ import annotations

from dataclasses import dataclass


class SalineError(Exception):
    """Root of every error saline raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Location:
    """Where in the model something happened. Every field is optional."""

    file: str | None = None  # relative to the model folder
    line: int | None = None  # 1-based
    node: str | None = None
    key: str | None = None  # reclass key path, e.g. "parameters:keystone:server:bind"

    def prefix(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.node:
            parts.append(f"node {self.node}")
        if self.key:
            parts.append(f"key {self.key}")
        return ", ".join(parts)


class LocatedError(SalineError):
    """An error about something the user wrote: the message says where (file:line, ...)."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location or Location()
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.location.prefix()
        return f"{where}: {self.message}" if where else self.message


class ModelError(LocatedError):
    """A mistake in the model (YAML, classes, references, merges...)."""


class ModelNotFoundError(ModelError):
    """The model folder, or its nodes or classes folder, does not exist."""


class ConfigError(ModelError):
    """reclass-config.yml is invalid."""


class YamlError(ModelError):
    """A YAML file does not parse, or does not have the shape of a reclass entity."""


class DuplicateNodeError(ModelError):
    """Two files define the same node name."""


class NodeNotFoundError(ModelError):
    """A node that was asked for does not exist."""


class ClassNotFoundError(ModelError):
    """A class named in `classes:` has no file."""


class ClassCycleError(ModelError):
    """Classes include each other in a loop."""


class ReferenceError_(ModelError):
    """Base of reference problems (named with a trailing underscore: a builtin is taken)."""


class MissingReferencesError(ReferenceError_):
    """One or more ${...} references point at keys that do not exist.

    All missing references of one node are reported together, one per line.
    """

    def __init__(self, node: str, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        self.node = node
        lines = [f"node {node}: {len(problems)} missing reference(s):"]
        for loc, text in problems:
            lines.append(f"  {loc.prefix()}: {text}")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return self.message


class ReferenceLoopError(ReferenceError_):
    """References refer to each other in a loop."""


class MalformedExpressionError(ModelError):
    """A ${...} reference or $[...] inventory query cannot be parsed."""


class TypeMergeError(ModelError):
    """Two values of incompatible types meet in a merge (e.g. a list over a dict)."""


class ConstantChangedError(ModelError):
    """A value declared constant with `=` is changed later."""


class QueryError(ModelError):
    """An inventory query cannot be evaluated."""


class SettingsError(LocatedError):
    """A setting is wrong: the project file (saline.toml), a flag or a variable."""

    exit_code = 2


class UsageError(SalineError):
    """The command line is wrong in a way argparse cannot see."""

    exit_code = 2


class FormulaError(LocatedError):
    """A formula is broken: bad metadata, a missing state file, a template error."""


class SaltError(SalineError):
    """Salt could not start or did not return state results; carries what it printed."""

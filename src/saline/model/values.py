"""Parsed parameter values: references, inventory queries, and deferred merges.

Pure data and parsing; nothing here touches the file system.

A string from the model that contains ``${`` or ``$[`` is parsed into an :class:`Expr`.
The grammar follows kapicorp-reclass (our reference engine), including its escaping
rules: ``\\${`` is a literal ``${``, ``\\\\${`` is a literal backslash followed by a
reference. The scanner is written by hand rather than with pyparsing (what reclass uses)
because parsing every string of every file is on the hot path of a compile, and the
grammar is small enough to read in one screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedExpressionError

REF_OPEN = "${"
REF_CLOSE = "}"
INV_OPEN = "$["
INV_CLOSE = "]"
ESC = "\\"

# Merge flags of a contribution (from the `~` and `=` key prefixes).
OVERWRITE = 1
CONSTANT = 2


class Ref:
    """A ``${a:b:c}`` reference. ``parts`` may nest references: ``${a:${b}}``."""

    __slots__ = ("parts", "path")

    def __init__(self, parts: list[str | Ref]) -> None:
        self.parts = parts
        # A reference without nested references has a fixed key path: split it once.
        self.path: tuple[str, ...] | None = (
            tuple(split_path(parts[0])) if len(parts) == 1 and isinstance(parts[0], str) else None
        )

    def text(self) -> str:
        # Iterative: references may nest deeper than Python's recursion limit.
        out: list[str] = []
        todo: list[str | Ref] = [self]
        while todo:
            p = todo.pop()
            if isinstance(p, str):
                out.append(p)
            else:
                todo.append(REF_CLOSE)
                todo.extend(reversed(p.parts))
                todo.append(REF_OPEN)
        return "".join(out)

    def is_simple(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], str)


@dataclass
class EqualityTest:
    """``exports:x == value``; each operand is ("export"|"self"|"value", path-or-value)."""

    left: tuple[str, Any]
    op: str  # "==" or "!="
    right: tuple[str, Any]


@dataclass
class Query:
    """A parsed ``$[ ... ]`` inventory query.

    kind: "value" (``exports:x``: a dict node -> value), "test" (``exports:x if ...``:
    the same, filtered), or "list" (``if ...``: a list of node names).
    """

    text: str
    kind: str
    value_path: list[str] | None
    tests: list[EqualityTest] = field(default_factory=list)
    logic: list[str] = field(default_factory=list)  # "and"/"or" between tests
    ignore_errors: bool = False
    all_envs: bool = False


class Expr:
    """A string value with references and/or queries.

    ``parts`` holds literal strings, :class:`Ref` and :class:`Query`. A single-part
    expression keeps the referenced value's type; several parts are joined as text.
    ``src`` is the file it came from (relative to the model) and ``fpath`` its key path
    in that file, so that errors can name the file and line.
    """

    __slots__ = ("fpath", "parts", "paths", "src", "template", "text")

    def __init__(
        self, parts: list[str | Ref | Query], text: str, src: str, fpath: tuple[str, ...]
    ) -> None:
        self.parts = parts
        self.text = text
        self.src = src
        self.fpath = fpath
        # Most expressions are literal text and references with fixed key paths: once those
        # paths are resolved, the value is ``template.format(*values)`` (an empty format
        # spec formats any value as ``str()`` does), or the one value itself when the
        # expression is a single reference (template None). ``paths`` is None otherwise.
        self.paths: tuple[tuple[str, ...], ...] | None = None
        self.template: str | None = None
        paths: list[tuple[str, ...]] = []
        pieces: list[str] = []
        for p in parts:
            if isinstance(p, str):
                pieces.append(p.replace("{", "{{").replace("}", "}}"))
            elif isinstance(p, Ref) and p.path is not None:
                paths.append(p.path)
                pieces.append("{}")
            else:
                return
        self.paths = tuple(paths)
        if not (len(parts) == 1 and paths):
            self.template = "".join(pieces)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


class Flagged:
    """A value under a ``~key`` (overwrite) or ``=key`` (constant) key in a file."""

    __slots__ = ("flags", "value")

    def __init__(self, value: Any, flags: int) -> None:
        self.value = value
        self.flags = flags


class Chain:
    """Values merged at one key whose merge must wait until references are resolved.

    Mirrors reclass's ValueList: created when a merge involves a reference, a query,
    a ``~``/``=`` flag, or values of different types. Each item is (value, flags).
    Immutable once built; merging creates a new chain.
    """

    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[Any, int], ...]) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"Chain({self.items!r})"


class FDict(dict[str, Any]):
    """A dict from a file in which some key (at any depth) had a ``~`` or ``=`` prefix.

    ``fresh`` is the same data as merged into nothing: overwrite markers dropped,
    constants kept as one-item chains. Plain dicts need no such form.
    """

    __slots__ = ("fresh",)
    fresh: dict[str, Any]


# ---------------------------------------------------------------------------
# Scanning ${...} and $[...]


def _malformed(text: str, why: str) -> MalformedExpressionError:
    return MalformedExpressionError(f"malformed reference or query {text!r}: {why}")


_OPENINGS = (
    REF_OPEN,
    INV_OPEN,
    ESC + REF_OPEN,
    ESC + INV_OPEN,
    ESC + ESC + REF_OPEN,
    ESC + ESC + INV_OPEN,
)


def needs_parse(s: str) -> bool:
    return REF_OPEN in s or INV_OPEN in s


_SIMPLE_REF = re.compile(r"\$\{([^\\${}\[\]]+)\}")


def parse_string(s: str) -> list[str | Ref | Query]:
    """Split ``s`` into literal text, references and queries (kapicorp-reclass grammar).

    Raises MalformedExpressionError (without a location; the caller adds it).
    """
    if "\\" not in s and "$[" not in s:
        # Fast path for the common shape: flat references, no escapes, no queries.
        pieces = _SIMPLE_REF.split(s)
        if not any("${" in lit or "}" in lit for lit in pieces[::2]):
            out: list[str | Ref | Query] = []
            for i, piece in enumerate(pieces):
                if i % 2:
                    out.append(Ref([piece]))
                elif piece:
                    out.append(piece)
            return out
    return _parse_full(s)


def _parse_full(s: str) -> list[str | Ref | Query]:
    parts: list[str | Ref | Query] = []
    buf: list[str] = []
    i, n = 0, len(s)

    def flush() -> None:
        if buf:
            parts.append("".join(buf))
            buf.clear()

    while i < n:
        if s.startswith(REF_OPEN, i):
            flush()
            ref, i = _scan_ref(s, i + 2)
            parts.append(ref)
        elif s.startswith(INV_OPEN, i):
            flush()
            q, i = _scan_query(s, i + 2)
            parts.append(q)
        elif s.startswith(ESC + ESC, i) and (
            s.startswith(REF_OPEN, i + 2)
            or s.startswith(REF_CLOSE, i + 2)
            or s.startswith(INV_OPEN, i + 2)
            or s.startswith(INV_CLOSE, i + 2)
        ):
            buf.append(ESC)  # "\\${" is a backslash, then a reference
            i += 2
            flush()  # a separate token in reclass: literal text does not run across it
        elif s.startswith(ESC + REF_OPEN, i):
            buf.append(REF_OPEN)
            i += 3
            flush()
        elif s.startswith(ESC + INV_OPEN, i):
            buf.append(INV_OPEN)
            i += 3
            flush()
        else:
            # Literal text runs until the next opening, escaped or not.
            j = i + 1
            while j < n and not s.startswith(_OPENINGS, j):
                j += 1
            buf.append(s[i:j])
            i = j
    flush()
    # Adjacent literals (from escapes) are joined, as reclass's Combine does within a token;
    # across tokens it also ends up as one string when rendered, so joining is safe.
    merged: list[str | Ref | Query] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + p
        else:
            merged.append(p)
    return merged


def _scan_ref(s: str, i: int) -> tuple[Ref, int]:
    """Scan a reference body starting after ``${``; return it and the index after ``}``.

    Nested references are kept on an explicit stack, so nesting depth is not limited by
    Python's recursion limit.
    """
    outer: list[list[str | Ref]] = []  # the parts of the references around this one
    parts: list[str | Ref] = []
    buf: list[str] = []
    n = len(s)
    while i < n:
        if s.startswith(REF_OPEN, i):
            if buf:
                parts.append("".join(buf))
                buf = []
            outer.append(parts)
            parts = []
            i += 2
        elif s.startswith(ESC + ESC, i) and (
            s.startswith(REF_OPEN, i + 2)
            or s.startswith(REF_CLOSE, i + 2)
            or s.startswith(INV_OPEN, i + 2)
            or s.startswith(INV_CLOSE, i + 2)
        ):
            buf.append(ESC)
            i += 2
        elif s.startswith(ESC + REF_OPEN, i):
            buf.append(REF_OPEN)
            i += 3
        elif s.startswith(ESC + REF_CLOSE, i):
            buf.append(REF_CLOSE)
            i += 2
        elif s[i] == REF_CLOSE:
            if buf:
                parts.append("".join(buf))
                buf = []
            if not parts:
                raise _malformed(s, "empty reference ${}")
            ref = Ref(parts)
            i += 1
            if not outer:
                return ref, i
            parts = outer.pop()
            parts.append(ref)
        else:
            buf.append(s[i])
            i += 1
    raise _malformed(s, "a ${ is not closed by }")


def _scan_query(s: str, i: int) -> tuple[Query, int]:
    buf: list[str] = []
    n = len(s)
    while i < n:
        if s.startswith(ESC + ESC, i) and (
            s.startswith(INV_OPEN, i + 2) or s.startswith(INV_CLOSE, i + 2)
        ):
            buf.append(ESC)
            i += 2
        elif s.startswith(ESC + INV_OPEN, i):
            buf.append(INV_OPEN)
            i += 3
        elif s.startswith(ESC + INV_CLOSE, i):
            buf.append(INV_CLOSE)
            i += 2
        elif s[i] == INV_CLOSE:
            return parse_query("".join(buf), s), i + 1
        else:
            buf.append(s[i])
            i += 1
    raise _malformed(s, "a $[ is not closed by ]")


_INT = re.compile(r"-?\d+\Z")
_REAL = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\.)\Z")
_SPLIT = re.compile(r"(?<!\\):")


def split_path(text: str) -> list[str]:
    """Split a reference path on ``:`` (an escaped ``\\:`` does not split)."""
    return _SPLIT.split(text)


def _operand(token: str) -> tuple[str, Any]:
    if _INT.match(token):
        return ("value", int(token))
    if _REAL.match(token):
        return ("value", float(token))
    path = split_path(token)
    head = path[0].lower()
    if head == "exports":
        return ("export", path[1:])
    if head == "self":
        return ("self", path[1:])
    if head == "true":
        return ("value", True)
    if head == "false":
        return ("value", False)
    return ("value", token)


def parse_query(body: str, whole: str) -> Query:
    """Parse the inside of ``$[ ... ]``: options, then ``X``, ``X if T...`` or ``if T...``."""
    tokens = body.split()
    ignore_errors = all_envs = False
    while tokens and tokens[0].startswith("+"):
        opt = tokens.pop(0).lower()
        if opt == "+ignoreerrors":
            ignore_errors = True
        elif opt == "+allenvs":
            all_envs = True
        else:
            raise _malformed(whole, f"unknown query option {opt}")
    if not tokens:
        raise _malformed(whole, "empty inventory query")

    def parse_tests(toks: list[str]) -> tuple[list[EqualityTest], list[str]]:
        tests: list[EqualityTest] = []
        logic: list[str] = []
        k = 0
        while True:
            if len(toks) - k < 3:
                raise _malformed(whole, "expected 'A == B' or 'A != B' after 'if'")
            a, op, b = toks[k : k + 3]
            if op not in ("==", "!="):
                raise _malformed(whole, f"unknown comparison {op!r} (use == or !=)")
            left, right = _operand(a), _operand(b)
            if left[0] != "export" and right[0] != "export":
                raise _malformed(whole, "a test must compare an exports:... value")
            if right[0] == "export":  # reclass takes the export from either side
                left, right = right, left
            tests.append(EqualityTest(left, op, right))
            k += 3
            if k == len(toks):
                return tests, logic
            word = toks[k].lower()
            if word not in ("and", "or"):
                raise _malformed(whole, f"expected 'and' or 'or', found {toks[k]!r}")
            logic.append(word)
            k += 1

    if tokens[0].lower() == "if":
        tests, logic = parse_tests(tokens[1:])
        return Query(body, "list", None, tests, logic, ignore_errors, all_envs)
    target = _operand(tokens[0])
    if target[0] != "export":
        raise _malformed(whole, f"a query selects exports:..., not {tokens[0]!r}")
    if len(tokens) == 1:
        return Query(body, "value", target[1], [], [], ignore_errors, all_envs)
    if tokens[1].lower() != "if":
        raise _malformed(whole, f"expected 'if' after {tokens[0]!r}")
    tests, logic = parse_tests(tokens[2:])
    return Query(body, "test", target[1], tests, logic, ignore_errors, all_envs)

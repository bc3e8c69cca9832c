"""Serialising data for scripts (JSON) and people (YAML): deterministic, and fast on big data.

``dump(data, fmt)`` returns the text; ``write(data, fmt, stream)`` writes it, newline-ended,
and is the one to use for big data (a whole inventory): JSON goes to the stream a node at a
time, never held whole in memory.

JSON is what ``json.dumps(data, indent=2, ensure_ascii=False, default=str)`` printed, made by
orjson (Python's json falls back to its pure-Python encoder under ``indent``: about 10x
slower). Byte for byte the same on models' data (keys in insertion order, non-ASCII kept,
the same escapes, non-string keys as strings, other values through ``str()``), except:

* floats below 1e-4 print in orjson's shortest form (``1e-7``, ``0.00005``; Python:
  ``1e-07``, ``5e-05``): the same numbers for any JSON reader;
* NaN and infinities print as ``null`` (Python printed ``NaN``/``Infinity``, which are not
  JSON);
* a dict key that is a date prints as a string (Python raised TypeError);
* a plain ``enum.Enum`` member prints as its value (Python: ``str(member)``).

What orjson refuses (integers beyond 64 bits, lone surrogates, nesting deeper than 255
levels, cycles) is printed by Python's json, so it prints (or fails) as before.

YAML is PyYAML's safe dump (libyaml's emitter; block style, keys in insertion order, no
anchors or aliases, unicode kept), byte for byte, but not through PyYAML's representer,
which builds a Python node object per value (about 20 s and 600 MB for a 1000-node
inventory): the layout of block mappings and sequences is written here, and each distinct
scalar is rendered once by PyYAML itself (or, for simple plain words, checked with PyYAML's
resolver). Anything unusual (a key that needs ``? ``, sets, bytes, subclasses of the
builtin types, ...) makes the whole document go through PyYAML as before.
"""

from __future__ import annotations

import codecs
import datetime
import json
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson
import yaml
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

FORMATS = ("json", "yaml")


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML text (YAML ends with a newline, JSON does not)."""
    if fmt == "json":
        try:
            return orjson.dumps(data, default=_json_default, option=_JSON_OPTIONS).decode()
        except orjson.JSONEncodeError:
            return _stdlib_json(data)
    if fmt == "yaml":
        return "".join(_yaml_chunks(data))
    raise ValueError(f"unknown output format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def write(data: Any, fmt: str, stream: IO[str]) -> None:
    """Write ``dump(data, fmt)`` and a final newline to ``stream``, piece by piece."""
    if fmt == "json":
        binary = _utf8_buffer(stream)
        if binary is not None:
            stream.flush()  # what was written as text before goes first
            # Written in batches: most chunks are a few bytes (a key, a bracket), and one
            # write per chunk cost a system call each (150,000 for a 1000-node inventory).
            batch: list[bytes] = []
            size = 0
            for chunk in _json_chunks(data, 0, _SPLIT_DEPTH):
                piece = chunk if isinstance(chunk, bytes) else chunk.encode(*_codec(stream))
                batch.append(piece)
                size += len(piece)
                if size >= _BATCH_BYTES:
                    binary.write(b"".join(batch))
                    batch.clear()
                    size = 0
            batch.append(b"\n")
            binary.write(b"".join(batch))
            binary.flush()
            return
        for chunk in _json_chunks(data, 0, _SPLIT_DEPTH):
            stream.write(chunk.decode() if isinstance(chunk, bytes) else chunk)
        stream.write("\n")
        return
    if fmt == "yaml":
        # Built whole before writing: a fallback to PyYAML must not follow partial output.
        for text in _yaml_chunks(data):
            stream.write(text)
        return
    raise ValueError(f"unknown output format {fmt!r} (expected one of: {', '.join(FORMATS)})")


# -- JSON ------------------------------------------------------------------------------------

_JSON_OPTIONS = (
    orjson.OPT_INDENT_2
    | orjson.OPT_NON_STR_KEYS
    # Python's json printed str(value) for these; orjson has its own forms.
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_JSON_KEY_OPTIONS = _JSON_OPTIONS & ~orjson.OPT_INDENT_2
#: write() encodes the containers this many levels deep itself, and what is below each with
#: one orjson call: for an inventory, a node's parameters at a time.
_SPLIT_DEPTH = 3
#: write() hands JSON text to the stream in pieces of about this size.
_BATCH_BYTES = 1 << 16


def _json_default(value: Any) -> Any:
    # What Python's json takes as its own types but orjson does not: float subclasses,
    # tuple subclasses (named tuples) print as numbers and lists, as before.
    if isinstance(value, float):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _stdlib_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


_CONTAINERS = frozenset({dict, list, tuple})


def _json_chunks(value: Any, level: int, depth: int) -> Iterator[bytes | str]:
    """The JSON text of ``value`` written at indent ``level``: the outer ``depth`` levels
    of dicts and lists here, each value below them with one call. Text (str) only where
    Python's json had to do it."""
    t = type(value)
    if depth and t is list and value and not any(type(x) in _CONTAINERS for x in value):
        # A list of scalars (an inventory's lists of node names) with one call, unless
        # orjson refuses an item: then item by item, as below.
        try:
            out = orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass
        else:
            yield out.replace(b"\n", b"\n" + b"  " * level) if level else out
            return
    if depth and (t is dict or t is list) and value:
        inner = b"\n" + b"  " * (level + 1)
        sep = inner
        if t is dict:
            yield b"{"
            for k, v in value.items():
                yield sep
                yield _json_key(k)
                yield b": "
                yield from _json_chunks(v, level + 1, depth - 1)
                sep = b"," + inner
            yield b"\n" + b"  " * level + b"}"
        else:
            yield b"["
            for v in value:
                yield sep
                yield from _json_chunks(v, level + 1, depth - 1)
                sep = b"," + inner
            yield b"\n" + b"  " * level + b"]"
        return
    # Below: one call, indented by ``level`` (JSON text has no raw newline in a string).
    try:
        out = orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError:
        text = _stdlib_json(value)
        yield text.replace("\n", "\n" + "  " * level) if level else text
        return
    yield out.replace(b"\n", b"\n" + b"  " * level) if level else out


def _json_key(key: Any) -> bytes | str:
    try:
        if type(key) is str:
            return orjson.dumps(key)
        # orjson's own conversion of non-string keys, as in the one-call output.
        return orjson.dumps({key: 0}, option=_JSON_KEY_OPTIONS)[1:-3]
    except orjson.JSONEncodeError:
        return json.dumps({key: 0}, ensure_ascii=False)[1:-4]


def _utf8_buffer(stream: IO[str]) -> IO[bytes] | None:
    """The binary stream under ``stream`` when bytes can go there directly (UTF-8 text)."""
    buffer = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None)
    if buffer is None or not encoding:
        return None
    try:
        if codecs.lookup(encoding).name != "utf-8":
            return None
    except LookupError:
        return None
    return buffer  # type: ignore[no-any-return]


def _codec(stream: IO[str]) -> tuple[str, str]:
    return getattr(stream, "encoding", None) or "utf-8", getattr(stream, "errors", None) or "strict"


# -- YAML ------------------------------------------------------------------------------------


class _NoAliasDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    # Values shared between keys (a reference to a dict) print in full at each place.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _pyyaml(data: Any) -> str:
    out: str = yaml.dump(
        data, Dumper=_NoAliasDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    return out


class _Unsupported(Exception):
    """Something the fast writer does not lay out: the document goes through PyYAML."""


_STR_TAG = "tag:yaml.org,2002:str"
#: Strings libyaml writes plain whatever the context (unless PyYAML's resolver reads them as
#: another type, checked apart): no indicator first, no space, colon or other specials.
_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./-]*(?::+[A-Za-z0-9_./-]+)*")
#: libyaml's line breaks (a scalar holding one spans lines, indented by its context).
_BREAKS = re.compile("[\r\n\x85\u2028\u2029]")
#: libyaml's line width: it folds long quoted and plain scalars at spaces past this column.
_WIDTH = 80
#: Other scalars whose text PyYAML gives (the fast writer lays out int, bool and None itself).
_SCALARS = frozenset({int, bool, float, type(None), datetime.date, datetime.datetime})
#: How many output pieces are joined into one chunk (fewer, larger objects held).
_CHUNK = 4096


def _yaml_chunks(data: Any) -> list[str]:
    t = type(data)
    if (t is dict or t is list or t is tuple) and data:
        try:
            w = _YamlWriter()
            if t is dict:
                w.mapping(data, 0, "")
            else:
                w.sequence(data, 0, "")
            return w.finish()
        except _Unsupported:
            pass
    return [_pyyaml(data)]


class _YamlWriter:
    """Block-style YAML as libyaml lays it out (indent 2, sequences in mappings not
    indented), with each distinct scalar rendered once."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chunks: list[str] = []
        self.resolver = Resolver()
        #: str value -> its text, for strings whose text is the same everywhere.
        self.words: dict[str, str] = {}
        #: str or other scalar value -> its one-line text (None: it spans lines).
        self.flat: dict[Any, str | None] = {}
        #: (value, indent, key text or None for a sequence item) -> text, for the rest.
        self.placed: dict[tuple[Any, int, str | None], str] = {}
        self.keys: dict[Any, str] = {}

    def finish(self) -> list[str]:
        self.chunks.append("".join(self.parts))
        self.parts = []
        return self.chunks

    # -- layout ------------------------------------------------------------------

    def mapping(self, d: dict[Any, Any], indent: int, lead: str) -> None:
        """``d`` (not empty) with keys at column ``indent``; ``lead`` starts its first line
        (the indent, or a sequence's ``- ``)."""
        parts = self.parts
        pad = " " * indent
        words = self.words
        keys = self.keys
        for k, v in d.items():
            kr = keys.get(k) if type(k) is str else None
            if kr is None:
                kr = self.key(k)
            t = type(v)
            if t is str:
                r = words.get(v)
                if r is None:
                    r = self.value(v, indent, kr, k)
                parts.append(f"{lead}{kr}: {r}\n")
            elif t is dict:
                if v:
                    parts.append(f"{lead}{kr}:\n")
                    self.mapping(v, indent + 2, " " * (indent + 2))
                else:
                    parts.append(f"{lead}{kr}: {{}}\n")
            elif t is list or t is tuple:
                if v:
                    parts.append(f"{lead}{kr}:\n")
                    self.sequence(v, indent, pad)
                else:
                    parts.append(f"{lead}{kr}: []\n")
            elif t is int:
                parts.append(f"{lead}{kr}: {v}\n")
            elif t is bool:
                parts.append(f"{lead}{kr}: {'true' if v else 'false'}\n")
            elif v is None:
                parts.append(f"{lead}{kr}: null\n")
            else:
                parts.append(f"{lead}{kr}: {self.value(v, indent, kr, k)}\n")
            lead = pad
        if len(parts) > _CHUNK:
            self.chunks.append("".join(parts))
            parts.clear()

    def sequence(self, items: list[Any] | tuple[Any, ...], indent: int, lead: str) -> None:
        """``items`` (not empty) with their ``- `` at column ``indent``."""
        parts = self.parts
        pad = " " * indent
        words = self.words
        for v in items:
            t = type(v)
            if t is str:
                r = words.get(v)
                if r is None:
                    r = self.value(v, indent, None, None)
                parts.append(f"{lead}- {r}\n")
            elif t is dict:
                if v:
                    self.mapping(v, indent + 2, lead + "- ")
                else:
                    parts.append(f"{lead}- {{}}\n")
            elif t is list or t is tuple:
                if v:
                    self.sequence(v, indent + 2, lead + "- ")
                else:
                    parts.append(f"{lead}- []\n")
            elif t is int:
                parts.append(f"{lead}- {v}\n")
            elif t is bool:
                parts.append(f"{lead}- {'true' if v else 'false'}\n")
            elif v is None:
                parts.append(f"{lead}- null\n")
            else:
                parts.append(f"{lead}- {self.value(v, indent, None, None)}\n")
            lead = pad
        if len(parts) > _CHUNK:
            self.chunks.append("".join(parts))
            parts.clear()

    # -- scalars -----------------------------------------------------------------

    def key(self, k: Any) -> str:
        t = type(k)
        memo = (t, repr(k) if t is float else k)  # 0.0 == -0.0
        r = self.keys.get(memo if t is not str else k)
        if r is not None:
            return r
        if t is str and len(k) < 100 and _PLAIN.fullmatch(k) and self._plain_str(k):
            r = k
        elif t is str or t in _SCALARS:
            out = _pyyaml({k: None})
            if out.startswith("? ") or not out.endswith(": null\n"):
                raise _Unsupported  # a complex key (long, or spanning lines)
            r = out[: -len(": null\n")]
            if _BREAKS.search(r):
                raise _Unsupported
        else:
            raise _Unsupported
        self.keys[k if t is str else memo] = r
        return r

    def value(self, v: Any, indent: int, kr: str | None, k: Any) -> str:
        """The text of scalar ``v`` as a mapping value (``kr``: its key's text, ``k`` the
        key) or a sequence item (``kr`` None), in a mapping or sequence at ``indent``."""
        t = type(v)
        if t is str:
            word: str = v
            if _PLAIN.fullmatch(word) and self._plain_str(word):
                self.words[word] = word
                return word
            memo: Any = v
        elif t in _SCALARS:
            memo = (t, repr(v) if t is float else v)  # 0.0 == -0.0
        else:
            # Sets, bytes, subclasses of the builtin types, other objects: PyYAML (as
            # before) for the whole document.
            raise _Unsupported
        flat: str | None
        if memo in self.flat:
            flat = self.flat[memo]
        else:
            out = _pyyaml([v])
            flat = out[2:-1] if out.startswith("- ") and out.endswith("\n") else None
            if flat is not None and _BREAKS.search(flat):
                flat = None
            self.flat[memo] = flat
            if flat is not None and t is str and " " not in flat:
                self.words[v] = flat
        column = indent + 2 if kr is None else indent + len(kr) + 2
        if flat is not None and (" " not in flat or column + len(flat) <= _WIDTH):
            return flat
        # Folded or spanning lines: its text depends on where it is.
        where = (memo, indent, kr)
        placed = self.placed.get(where)
        if placed is None:
            placed = self.placed[where] = self._placed(v, indent, kr, k)
        return placed

    def _plain_str(self, s: str) -> bool:
        """Does PyYAML's resolver read ``s``, written plain, back as a string?"""
        tag: str = self.resolver.resolve(ScalarNode, s, (True, False))  # type: ignore[no-untyped-call]
        return tag == _STR_TAG

    @staticmethod
    def _placed(v: Any, indent: int, kr: str | None, k: Any) -> str:
        """The text of ``v`` written by libyaml at that place: inside a document of the same
        nesting, told apart from what precedes it by the same document with a placeholder."""

        def doc(x: Any) -> Any:
            if kr is None:
                x = [x]
                for _ in range(indent // 2):
                    x = [x]
            else:
                x = {k: x}
                for _ in range(indent // 2):
                    x = {"a": x}
            return x

        before = _pyyaml(doc("x"))
        out = _pyyaml(doc(v))
        if not before.endswith(" x\n") or not out.startswith(before[:-2]):
            raise _Unsupported
        text = out[len(before) - 2 : -1]
        if text.endswith("\n..."):
            raise _Unsupported
        return text

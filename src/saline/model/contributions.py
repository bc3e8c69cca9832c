"""Which files set a key of a node: the base of error messages and of ``explain``.

A node's merged parameters remember only the order of the files merged into them
(``MergedNode.sources``). To find who set a key, each of those files is asked whether it
sets that key; the last one to set it won, the earlier ones were overridden (or merged
into, for dicts and lists). Lines come from :meth:`ModelFiles.locate`.

Below both the compiler (which names these files in its error messages) and
:mod:`.provenance` (which explains keys): it knows the model only through the small
protocols here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .loader import AUTOMATIC_SOURCE, ModelFiles
from .values import CONSTANT, OVERWRITE, Expr, FDict, Flagged

Path = tuple[str, ...]


class MergedSources(Protocol):
    """What a merged node tells about its sources (``MergedNode`` has it)."""

    @property
    def sources(self) -> list[str]:
        """Files in merge order (AUTOMATIC_SOURCE: the automatic parameters)."""

    @property
    def automatic(self) -> dict[str, Any]:
        """The automatic ``_reclass_`` parameters."""


class MergeSite(Protocol):
    """What :func:`contributions` needs from a model (``Model`` has it)."""

    @property
    def files(self) -> ModelFiles:
        """The model's files."""

    def merged(self, name: str) -> MergedSources:
        """Node ``name`` after class expansion and merging."""


@dataclass
class Contribution:
    file: str
    line: int | None
    raw: Any
    flags: int

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def summary(self) -> str:
        return show_raw(self.raw, self.flags)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "line": self.line, "value": plain(self.raw)}
        if self.flags & OVERWRITE:
            d["overwrite"] = True
        if self.flags & CONSTANT:
            d["constant"] = True
        return d


def plain(raw: Any) -> Any:
    """A prepared value as the user wrote it (references as text)."""
    t = type(raw)
    if t is Expr:
        return raw.text
    if t is Flagged:
        return plain(raw.value)
    if t is dict or t is FDict:
        return {k: plain(v) for k, v in raw.items()}
    if t is list:
        return [plain(v) for v in raw]
    return raw


def show_raw(raw: Any, flags: int = 0) -> str:
    prefix = "~" if flags & OVERWRITE else "=" if flags & CONSTANT else ""
    text = json.dumps(plain(raw), default=str, ensure_ascii=False)
    if len(text) > 70:
        text = text[:67] + "..."
    return prefix + text


def contributions(model: MergeSite, node: str, section: str, path: Path) -> list[Contribution]:
    """The files that set ``section:path`` for ``node``, in merge order."""
    merged = model.merged(node)
    files = model.files
    out: list[Contribution] = []
    for src in merged.sources:
        if src == AUTOMATIC_SOURCE:
            data: Any = merged.automatic if section == "parameters" else {}
            file = AUTOMATIC_SOURCE
        else:
            ent = files.by_src[src]
            data = ent.parameters if section == "parameters" else ent.exports
            file = ent.file
        v = data
        flags = 0
        found = True
        for key in path:
            t = type(v)
            if (t is dict or t is FDict) and key in v:
                v = v[key]
                if type(v) is Flagged:
                    flags |= v.flags
                    v = v.value
            else:
                found = False
                break
        if found:
            line = files.locate(file, (section, *path)) if file != AUTOMATIC_SOURCE else None
            out.append(Contribution(file, line, v, flags))
    return out

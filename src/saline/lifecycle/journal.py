"""The apply journal: an append-only record of each step of a rollout, so an apply that
was killed can be resumed.

One file per stack while an apply is under way (``STATE/stacks/PROJECT/journal.jsonl``):
the first line says what is applied (the release id, the plan's steps), each next line
one phase of one step (``begin``, ``drained``, ``swapped``, ``gated``, ``done``,
``restored``, ``failed``). Every line is written and flushed to disk before the phase's
effect is taken for granted. A last line cut short by a kill has no newline: it is
ignored. When the apply ends (succeeded or stopped after a failure) the journal is
moved aside to ``journal/RELEASE-TIME.jsonl``: the next apply starts a new one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SalineError

PHASES = ("begin", "drained", "swapped", "gated", "done", "restored", "failed")


class JournalError(SalineError):
    """A journal that cannot be read."""


@dataclass
class Journal:
    path: str
    release: str
    steps: list[dict[str, Any]]
    #: The last phase recorded for each step index.
    phases: dict[int, str] = field(default_factory=dict)

    @classmethod
    def start(cls, path: str, release: str, steps: Sequence[dict[str, Any]]) -> Journal:
        if os.path.exists(path):
            raise JournalError(f"{path}: an apply is already under way (resume it first)")
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        journal = cls(path, release, [dict(s) for s in steps])
        head = {"release": release, "steps": journal.steps, "started": _now()}
        journal._append(head)
        return journal

    @classmethod
    def load(cls, path: str) -> Journal | None:
        """The journal of an unfinished apply, or None when there is none."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise JournalError(f"{path}: cannot read the apply journal ({e})") from None
        lines = text.split("\n")
        complete = lines[:-1]  # the part after the last newline was cut short (or empty)
        if not complete:
            raise JournalError(
                f"{path}: the apply journal is empty or truncated before its first line; "
                "nothing was changed yet: remove it and run `saline apply` again"
            )
        try:
            head = json.loads(complete[0])
            journal = cls(path, str(head["release"]), list(head["steps"]))
        except (ValueError, KeyError, TypeError) as e:
            raise JournalError(f"{path}:1: not an apply journal ({e})") from None
        for number, line in enumerate(complete[1:], 2):
            try:
                entry = json.loads(line)
                index, phase = int(entry["step"]), str(entry["phase"])
            except (ValueError, KeyError, TypeError) as e:
                raise JournalError(f"{path}:{number}: corrupt journal line ({e})") from None
            if phase not in PHASES or not 0 <= index < len(journal.steps):
                raise JournalError(f"{path}:{number}: unknown step {index} or phase {phase!r}")
            journal.phases[index] = phase
        return journal

    def _append(self, entry: dict[str, Any]) -> None:
        append_line(self.path, entry)

    def record(self, index: int, phase: str, **detail: Any) -> None:
        assert phase in PHASES, phase
        self._append({"step": index, "phase": phase, "time": _now(), **detail})
        self.phases[index] = phase

    def phase(self, index: int) -> str | None:
        return self.phases.get(index)

    def close(self, outcome: str) -> str:
        """Move the journal aside; returns where it went."""
        folder = os.path.join(os.path.dirname(self.path), "journal")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        target = os.path.join(
            folder, f"{self.release}-{time.strftime('%Y%m%dT%H%M%S')}-{outcome}.jsonl"
        )
        os.replace(self.path, target)
        return target


def append_line(path: str, entry: Mapping[str, Any]) -> None:
    """One JSON line appended to ``path`` (0600) and flushed to disk before this returns:
    a record that a kill right after cannot lose (a kill during it leaves a last line
    without its newline, which readers ignore)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

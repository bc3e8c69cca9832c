"""What saline keeps about a stack's releases, and what it reads back from the runtime.

Under the stack's folder (``STATE/stacks/PROJECT``):

* ``releases/ID.json``: every release applied (the canonical release text, no secrets);
  ``releases/current``: the id of the one running now; ``releases/log.jsonl``: one line
  per release applied (id, time, source, outcome), for ``saline releases``;
* ``configs/DIGEST.json`` (0600): each instance's config contents by config digest, so a
  plan can show the diff of a file against what runs, and a rollback has the old files;
* ``pillars/ID.json`` (0600): the nodes' pillars of each release (the model values a
  plan says changed);
* ``upgrades.jsonl``: each release upgrade's database phase that ran (expanded,
  contracted) with its backup: whether a service can still go back (:mod:`.upgrade`).

A record that does not parse is named in one message; nothing is changed then.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ..build.graph import Resolve
from ..errors import SalineError
from ..formulas import FormulaSet
from ..model import Model
from ..release import Release, release_from_dict, release_text
from ..runtime.podman import PodmanError
from ..runtime.process import ToolMissingError
from ..settings import Settings
from ..stack import Stack, load_stack, reloaded
from .journal import append_line
from .plan import Current, Plan
from .upgrade import UpgradeRecord

PLAN_KIND = "saline-plan"


class RecordError(SalineError):
    """A release record, plan file or journal that cannot be read."""


def _write(path: str, text: str, mode: int = 0o644) -> None:
    """Atomic: a reader never sees half a record."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise RecordError(f"{path}: {what} is unreadable or corrupt ({e})") from None


class Records:
    """The release records of one stack."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.releases = os.path.join(directory, "releases")
        self.configs = os.path.join(directory, "configs")
        self.pillars = os.path.join(directory, "pillars")

    def save(self, release: Release, pillars: Mapping[str, Any]) -> None:
        """Keep a release, its config contents and pillars (before it is applied)."""
        for digest, files in release.contents().items():
            path = os.path.join(self.configs, f"{digest}.json")
            if not os.path.exists(path):
                _write(path, json.dumps(files, sort_keys=True), 0o600)
        _write(os.path.join(self.pillars, f"{release.id}.json"), json.dumps(pillars), 0o600)
        _write(os.path.join(self.releases, f"{release.id}.json"), release_text(release))

    def applied(self, release: Release, outcome: str) -> None:
        """Record the outcome of applying ``release``; a success makes it current."""
        if outcome == "applied":
            _write(os.path.join(self.releases, "current"), release.id + "\n")
        line = {
            "id": release.id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": dict(release.source),
            "outcome": outcome,
        }
        os.makedirs(self.releases, mode=0o700, exist_ok=True)
        with open(os.path.join(self.releases, "log.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")

    def record_upgrade(self, record: UpgradeRecord) -> None:
        """Append an upgrade's phase (flushed before the next step starts)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        line = {**record.as_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_line(self.upgrades_file, line)

    @property
    def upgrades_file(self) -> str:
        return os.path.join(self.directory, "upgrades.jsonl")

    def upgrades(self) -> dict[str, UpgradeRecord]:
        """The last upgrade record of each service."""
        try:
            with open(self.upgrades_file, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except FileNotFoundError:
            return {}
        out = {}
        for number, line in enumerate(lines[:-1], 1):  # a last line cut short: ignored
            try:
                record = UpgradeRecord.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                raise RecordError(f"{self.upgrades_file}:{number}: corrupt record ({e})") from None
            out[record.service] = record
        return out

    def current_id(self) -> str | None:
        try:
            with open(os.path.join(self.releases, "current"), encoding="utf-8") as fh:
                return fh.read().strip() or None
        except FileNotFoundError:
            return None

    def contents(self, digests: list[str]) -> dict[str, dict[str, str]]:
        out = {}
        for d in digests:
            try:
                out[d] = _read_json(os.path.join(self.configs, f"{d}.json"), "a config record")
            except FileNotFoundError:
                continue
        return out

    def load(self, release_id: str) -> tuple[Release, dict[str, Any]]:
        """A recorded release (with its config contents) and its pillars."""
        path = os.path.join(self.releases, f"{release_id}.json")
        try:
            data = _read_json(path, "a release record")
        except FileNotFoundError:
            raise RecordError(f"no release {release_id} is recorded in {self.releases}") from None
        digests = [i.get("config_digest", "") for i in (data.get("instances") or {}).values()]
        try:
            release = release_from_dict(data, self.contents(digests))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RecordError(f"{path}: not a valid release record ({e})") from None
        try:
            pillars = _read_json(
                os.path.join(self.pillars, f"{release_id}.json"), "a pillar record"
            )
        except FileNotFoundError:
            pillars = {}
        return release, pillars

    def history(self) -> list[dict[str, Any]]:
        path = os.path.join(self.releases, "log.jsonl")
        out = []
        try:
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        raise RecordError(f"{path}:{number}: not a JSON line") from None
        except FileNotFoundError:
            return []
        return out


def observe(stack: Stack, records: Records) -> Current:
    """What runs in ``stack``: each service container's instance key and digest (labels),
    each bootstrap task done, and the recorded release they came from."""
    runner = stack.runner()
    try:
        containers = runner.containers()
    except (PodmanError, ToolMissingError) as e:
        raise SalineError(f"cannot read the stack {stack.plan.project} from podman: {e}") from e
    digests: dict[str, str] = {}
    overlay = reloaded(stack)
    for c in containers.values():
        key = c.labels.get("saline.instance")
        digest = overlay.get(c.id) or c.labels.get("saline.digest")
        if c.labels.get("saline.kind") == "service" and key and digest and c.running:
            digests[key] = digest
    tasks: dict[str, str] = {}
    for record in stack.tasks_done().values():
        if isinstance(record, dict) and record.get("key") and record.get("task_inputs"):
            tasks[str(record["key"])] = str(record["task_inputs"])
    release = None
    pillars: dict[str, Any] = {}
    current = records.current_id()
    if current:
        release, pillars = records.load(current)
    upgrades = records.upgrades()
    if not digests:
        label = f"stack {stack.plan.project}: not running"
        return Current({}, tasks, release, {}, pillars, label, upgrades)
    contents = release.contents() if release else {}
    label = f"stack {stack.plan.project}"
    return Current(digests, tasks, release, contents, pillars, label, upgrades)


def observe_stack(
    settings: Settings, model: Model, formulas: FormulaSet, resolve: Resolve
) -> Current:
    stack = load_stack(model, formulas, settings.stack, settings.state_dir, resolve=resolve)
    return observe(stack, Records(stack.directory))


def write_plan(path: str, plan: Plan) -> None:
    """A plan file: the plan, and what it was made from (apply refuses it if either moved)."""
    doc = {"kind": PLAN_KIND, **plan.as_dict(), "release": plan.desired.as_dict()}
    _write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", 0o600)


def read_plan(path: str) -> dict[str, Any]:
    try:
        data = _read_json(path, "the plan file")
    except FileNotFoundError:
        raise RecordError(f"{path}: no such plan file") from None
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
        raise RecordError(f"{path}: not a saline plan file")
    for key in ("format_version", "desired_release", "base_fingerprint", "steps", "release"):
        if key not in data:
            raise RecordError(f"{path}: the plan file is truncated or corrupt (no {key!r})")
    return data

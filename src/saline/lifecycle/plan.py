"""The plan: what a change of the model does to what runs. Pure.

:func:`make_plan` compares the desired :class:`~saline.release.Release` with the current
state (what runs, read back from the runtime and the release record; or another
Release) and returns, per service instance, the action and why:

* ``create`` (new instance), ``remove`` (no longer in the model);
* ``replace``: its image or container definition changed;
* ``restart``, ``reload``, ``none``: only config files changed, and the formula's impact
  table says what the worst of those changes needs (unknown means restart);

with each changed config file as a unified diff with secret values masked, the model
values that changed under the service's pillar section (with the file and line that set
each, via provenance), the bootstrap tasks that will run and why, and the order: waves of
services in dependency order, instances one at a time.
"""

from __future__ import annotations

import configparser
import difflib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..formulas import FormulaSet
from ..formulas.schema import CHANGE_ORDER, Change, FileImpact
from ..model.secrets import MASK, MIN_LENGTH, secret_values
from ..release import Instance, Release
from .upgrade import BEFORE, ReleaseUpgrade, UpgradeRecord, plan_upgrades, releases_running

FORMAT_VERSION = 1
Action = str  # create | replace | restart | reload | none | remove
ACTIONS = ("create", "replace", "restart", "reload", "none", "remove")


@dataclass(frozen=True)
class Current:
    """What the plan starts from: the last release applied (when recorded) and what runs.

    ``digests``: for each instance key that runs, its change key as the runtime reports
    it (a label); ``tasks``: each bootstrap task done, with the inputs it ran with.
    ``release``: the recorded release those came from, if any (it gives file digests);
    ``contents``: known config contents by config digest; ``pillars``: the nodes'
    pillars of that release, if recorded (to say which model values changed).
    """

    digests: Mapping[str, str]
    tasks: Mapping[str, str]
    release: Release | None = None
    contents: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    pillars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: What the plan was compared against, for the record: "runtime" or a release id.
    label: str = "runtime"
    #: Per service, the last release upgrade's database phase that ran (expanded or
    #: contracted) and its backup: whether going back is still possible.
    upgrades: Mapping[str, UpgradeRecord] = field(default_factory=dict)

    @classmethod
    def of_release(
        cls,
        release: Release,
        pillars: Mapping[str, Mapping[str, Any]] | None = None,
        label: str | None = None,
    ) -> Current:
        """A release as if it ran (``plan --from REV``)."""
        return cls(
            {i.key: i.digest for i in release.instances},
            {t.key: t.inputs for t in release.tasks},
            release,
            release.contents(),
            pillars or {},
            label or f"release {release.id}",
        )

    @classmethod
    def nothing(cls) -> Current:
        return cls({}, {}, label="nothing running")

    def fingerprint(self) -> str:
        """Changes when what runs changes: a plan made against another state is stale."""
        from ..release import _sha

        return _sha(sorted(self.digests.items()), sorted(self.tasks.items()))[:16]


@dataclass(frozen=True)
class Cause:
    """A model value that changed, where it is set now, and what it resolved through."""

    key: str
    location: str | None  # file:line
    origin: str | None  # for a reference: where the referenced value is set
    secret: bool
    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "location": self.location, "secret": self.secret}
        if self.origin:
            out["origin"] = self.origin
        if not self.secret:
            out["before"] = self.before
            out["after"] = self.after
        return out


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added | removed | modified
    impact: Change
    #: Why that impact: which sections/keys changed and what the table says of them.
    why: str
    diff: tuple[str, ...]  # unified diff lines, secrets masked; () when unknown
    secret_changed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "impact": self.impact,
            "why": self.why,
            "diff": list(self.diff),
            "secret_changed": self.secret_changed,
        }


@dataclass(frozen=True)
class PackageChange:
    """A Debian package whose version differs between the running image and the new one
    (None: not in that image)."""

    name: str
    before: str | None
    after: str | None

    def show(self) -> str:
        return f"{self.name} {self.before or '(none)'} -> {self.after or '(removed)'}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class InstanceChange:
    key: str
    node: str
    service: str
    action: Action
    reasons: tuple[str, ...]
    files: tuple[FileChange, ...] = ()
    causes: tuple[Cause, ...] = ()
    image: tuple[str | None, str | None] | None = None
    behind_haproxy: bool = False
    #: When the image changed: its Debian packages that differ (where both are known).
    packages: tuple[PackageChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "node": self.node,
            "service": self.service,
            "action": self.action,
            "reasons": list(self.reasons),
            "files": [f.as_dict() for f in self.files],
            "causes": [c.as_dict() for c in self.causes],
        }
        if self.image:
            out["image"] = {"before": self.image[0], "after": self.image[1]}
            out["packages"] = [p.as_dict() for p in self.packages]
        return out


@dataclass(frozen=True)
class TaskRun:
    key: str
    service: str
    task: str
    node: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "service": self.service,
            "task": self.task,
            "node": self.node,
            "why": self.why,
        }


@dataclass(frozen=True)
class Step:
    """One step of the rollout, in order: a task to run or an instance to change."""

    kind: str  # task | instance | upgrade
    key: str  # an upgrade's: its service
    action: str  # run | create | replace | restart | reload | none | remove; an upgrade's phase
    wave: int
    #: An upgrade phase's releases and the task it stands for (what the engine records).
    upgrade: ReleaseUpgrade | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "wave": self.wave,
        }
        if self.upgrade is not None:
            out["upgrade"] = self.upgrade.as_dict()
        return out


@dataclass(frozen=True)
class Plan:
    desired: Release
    base: str
    base_fingerprint: str
    changes: tuple[InstanceChange, ...]
    tasks: tuple[TaskRun, ...]
    steps: tuple[Step, ...]
    unchanged: int
    #: Services moving to another OpenStack release (their database phases are steps).
    upgrades: tuple[ReleaseUpgrade, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in ACTIONS}
        for c in self.changes:
            out[c.action] += 1
        out["tasks"] = len(self.tasks)
        out["unchanged"] = self.unchanged
        return out

    def summary(self) -> str:
        if self.empty:
            return f"No changes: {self.unchanged} instance(s) run as the model says."
        c = self.counts()
        parts = [f"{c[a]} to {a}" for a in ("create", "replace", "restart", "reload", "remove")]
        if c["none"]:
            parts.append(f"{c['none']} with files only")
        upgrades = "".join(
            f"; {u.service} {u.before} -> {u.after} (database phases: {', '.join(u.phases)})"
            for u in self.upgrades
        )
        return (
            f"Plan: {', '.join(parts)}; {c['tasks']} task(s) to run; {c['unchanged']} unchanged"
            f"{upgrades}."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "desired_release": self.desired.id,
            "base": self.base,
            "base_fingerprint": self.base_fingerprint,
            "summary": self.summary(),
            "counts": self.counts(),
            "changes": [c.as_dict() for c in self.changes],
            "tasks": [t.as_dict() for t in self.tasks],
            "steps": [s.as_dict() for s in self.steps],
            "upgrades": [u.as_dict() for u in self.upgrades],
        }


# --- the planner --------------------------------------------------------------------------

#: Where a node's parameter is set now: (file:line, origin through references) or Nones.
Locate = Callable[[str, str], tuple[str | None, str | None]]


def _no_location(node: str, key: str) -> tuple[str | None, str | None]:
    return None, None


def make_plan(
    desired: Release,
    current: Current,
    formulas: FormulaSet,
    pillars: Mapping[str, Mapping[str, Any]],
    locate: Locate = _no_location,
) -> Plan:
    """Compare ``desired`` with ``current``. Pure.

    ``pillars``: the desired nodes' pillars (for the model values behind a change and for
    masking secrets); ``locate``: where a value is set in the model (provenance)."""
    secrets: set[str] = set()
    for p in (*pillars.values(), *current.pillars.values()):
        secrets |= secret_values(dict(p))
    old_release = current.release
    changes: list[InstanceChange] = []
    unchanged = 0
    desired_keys = set()
    for inst in desired.instances:
        desired_keys.add(inst.key)
        have = current.digests.get(inst.key)
        if have is None:
            changes.append(
                InstanceChange(inst.key, inst.node, inst.service, "create", ("new instance",))
            )
            continue
        if have == inst.digest:
            unchanged += 1
            continue
        before = old_release.instance(inst.key) if old_release else None
        if before is None or before.digest != have:
            # What runs is not the recorded release: the digests say it differs, no more.
            changes.append(
                InstanceChange(
                    inst.key,
                    inst.node,
                    inst.service,
                    "replace",
                    ("what runs is not recorded: replaced with the model's",),
                )
            )
            continue
        changes.append(
            _compare(before, inst, current, formulas, pillars, secrets, locate, desired.packages)
        )
    for key in sorted(set(current.digests) - desired_keys):
        service, _, node = key.partition("@")
        changes.append(InstanceChange(key, node, service, "remove", ("no longer in the model",)))

    running = releases_running(old_release, current.digests, formulas, current.pillars)
    upgrades = plan_upgrades(desired, running, formulas, pillars, current.upgrades, locate)
    # The task an upgrade's phases stand for (a full schema sync) does not run.
    replaced = {u.replaces for u in upgrades}
    tasks = []
    for t in desired.tasks:
        if t.key in replaced:
            continue
        done = current.tasks.get(t.key)
        if done == t.inputs:
            continue
        if done is None:
            why = "never ran"
        else:
            old_task = old_release.task(t.key) if old_release else None
            why = _task_why(old_task.values if old_task else None, t.values, old_task, t)
        tasks.append(TaskRun(t.key, t.service, t.task, t.node, why))

    steps = _steps(desired, changes, tasks, upgrades)
    return Plan(
        desired,
        current.label,
        current.fingerprint(),
        tuple(changes),
        tuple(tasks),
        steps,
        unchanged,
        upgrades,
    )


def _task_why(
    old: Mapping[str, str] | None, new: Mapping[str, str], old_task: Any, task: Any
) -> str:
    if old is None:
        return "its inputs changed"
    if old_task.image_tag != task.image_tag:
        return f"its image changed ({old_task.image_tag[:12]} -> {task.image_tag[:12]})"
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        return "values it uses changed: " + ", ".join(changed)
    return "its states changed"


def _compare(
    before: Instance,
    after: Instance,
    current: Current,
    formulas: FormulaSet,
    pillars: Mapping[str, Mapping[str, Any]],
    secrets: set[str],
    locate: Locate,
    packages: Mapping[str, Mapping[str, str]],
) -> InstanceChange:
    spec = formulas.services[after.service][1]
    reasons: list[str] = []
    image = None
    changed_packages: tuple[PackageChange, ...] = ()
    if before.runtime_digest != after.runtime_digest:
        if (before.image, before.image_tag) != (after.image, after.image_tag):
            image = (f"{before.image}:{before.image_tag}", f"{after.image}:{after.image_tag}")
            had = current.release.packages.get(image[0]) if current.release else None
            has = packages.get(image[1])
            why = f"image {before.image_tag[:12]} -> {after.image_tag[:12]}"
            if had is not None and has is not None:
                changed_packages = package_changes(had, has)
                if changed_packages:
                    shown = ", ".join(p.show() for p in changed_packages[:3])
                    more = (
                        f", {len(changed_packages) - 3} more" if len(changed_packages) > 3 else ""
                    )
                    why += f": {len(changed_packages)} package(s) ({shown}{more})"
                else:
                    why += ": the same packages"
            reasons.append(why)
        else:
            reasons.append("container definition changed (command, ports, volumes or health)")
    old_contents = current.contents.get(before.config_digest, {})
    files: list[FileChange] = []
    paths = sorted({c.path for c in before.configs} | {c.path for c in after.configs})
    for path in paths:
        old, new = before.config(path), after.config(path)
        if old is not None and new is not None and old.digest == new.digest:
            continue
        old_text = old_contents.get(path) if old is not None else ""
        new_text = new.content if new is not None else ""
        status = "added" if old is None else "removed" if new is None else "modified"
        impact, why = file_impact(spec.impact(path), old_text, new_text)
        diff, secret_changed = masked_diff(path, old_text, new_text, secrets)
        files.append(FileChange(path, status, impact, why, diff, secret_changed))
    if image or reasons:
        action: Action = "replace"
    else:
        worst = max((f.impact for f in files), key=CHANGE_ORDER.index, default="none")
        action = worst
        if files:
            reasons.append(
                "config changed: "
                + "; ".join(f"{f.path} needs {f.impact} ({f.why})" for f in files)
            )
    if action in ("restart", "replace") and spec.restart_effect:
        reasons.append(f"effect of the {action}: {spec.restart_effect}")
    causes = tuple(
        _causes(
            after.node,
            spec.pillar,
            current.pillars.get(before.node),
            pillars.get(after.node),
            secrets,
            locate,
        )
    )
    return InstanceChange(
        after.key,
        after.node,
        after.service,
        action,
        tuple(reasons),
        tuple(files),
        causes,
        image,
        packages=changed_packages,
    )


def package_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[PackageChange, ...]:
    """The Debian packages that differ between two images (versions, added, removed)."""
    return tuple(
        PackageChange(name, old.get(name), new.get(name))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    )


def file_impact(impact: FileImpact, old: str | None, new: str) -> tuple[Change, str]:
    """What a change of one file needs, and why. Pure.

    With per-section or per-key entries the changed INI keys are found and each takes the
    most specific entry; a file that does not parse as INI, or whose previous content is
    unknown, takes the worst the table allows for it."""
    if not impact.keys:
        return impact.change, "impact table: the whole file"
    if old is None:
        worst = max((impact.change, *impact.keys.values()), key=CHANGE_ORDER.index)
        return worst, "previous content unknown"
    changed = _changed_ini_keys(old, new)
    if changed is None:
        return impact.change, "not an INI file"
    need: Change = "none"
    named = []
    for section, key in sorted(changed):
        entry = impact.keys.get(f"{section}/{key}", impact.keys.get(section, impact.change))
        named.append(f"[{section}] {key}: {entry}")
        need = max(need, entry, key=CHANGE_ORDER.index)
    return need, ", ".join(named) or "whitespace or comments only"


def _changed_ini_keys(old: str, new: str) -> set[tuple[str, str]] | None:
    def parse(text: str) -> dict[tuple[str, str], str] | None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text)
        except configparser.Error:
            return None
        out = {("DEFAULT", k): v for k, v in parser.defaults().items()}
        for s in parser.sections():
            for k, v in parser.items(s, raw=True):
                if k not in parser.defaults() or parser.defaults()[k] != v:
                    out[(s, k)] = v
        return out

    a, b = parse(old), parse(new)
    if a is None or b is None:
        return None
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def mask(text: str, secrets: set[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= MIN_LENGTH:
            text = text.replace(s, MASK)
    return text


def masked_diff(
    path: str, old: str | None, new: str, secrets: set[str]
) -> tuple[tuple[str, ...], bool]:
    """A unified diff with every secret value masked, and whether a secret changed (a
    pair of lines that differ only in masked values). Pure."""
    if old is None:
        return (), False
    lines = list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"a{path}", f"b{path}", lineterm="", n=2
        )
    )
    masked = tuple(mask(line, secrets) for line in lines)
    changed = [line for line in lines[2:] if line[:1] in "+-"]
    # A secret changed when the secret values on the removed lines are not those on the
    # added ones: a line that changed elsewhere keeps its secrets (a URL with a password
    # whose path changed) and is no secret change.
    secret_changed = _secrets_in(changed, "-", secrets) != _secrets_in(changed, "+", secrets)
    return masked, secret_changed


def _secrets_in(lines: list[str], sign: str, secrets: set[str]) -> Counter[str]:
    """How often each secret value occurs on the diff lines starting with ``sign``."""
    found: Counter[str] = Counter()
    for line in lines:
        if line.startswith(sign):
            for value in secrets:
                if len(value) >= MIN_LENGTH and value in line:
                    found[value] += line.count(value)
    return found


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, Mapping):
        for k in sorted(tree, key=str):
            yield from _leaves(tree[k], (*prefix, str(k)))
    else:
        yield prefix, tree


def _section(pillar: Mapping[str, Any] | None, path: str) -> Any:
    v: Any = pillar
    for k in path.split(":"):
        if not isinstance(v, Mapping):
            return None
        v = v.get(k)
    return v


def _causes(
    node: str,
    section: str,
    old_pillar: Mapping[str, Any] | None,
    new_pillar: Mapping[str, Any] | None,
    secrets: set[str],
    locate: Locate,
) -> Iterator[Cause]:
    """The values under the service's pillar section that differ. Pure."""
    if old_pillar is None or new_pillar is None:
        return
    old = dict(_leaves(_section(old_pillar, section)))
    new = dict(_leaves(_section(new_pillar, section)))
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        key = ":".join((section, *path)) if path else section
        # A list or mapping holding a secret anywhere (a user list with passwords) is
        # secret as a whole.
        secret = any(mask(str(v), secrets) != str(v) for v in (a, b) if v is not None)
        where, origin = locate(node, key) if b is not None else (None, None)
        yield Cause(key, where, origin, secret, a, b)


def _steps(
    desired: Release,
    changes: list[InstanceChange],
    tasks: list[TaskRun],
    upgrades: tuple[ReleaseUpgrade, ...] = (),
) -> tuple[Step, ...]:
    """Waves in dependency order; in each: service-scoped tasks, then per instance (by
    node) its tasks and itself. Removals last. A service's release upgrade: its backup
    and expand phases first, its migrate and contract phases after its last instance."""
    by_key = {c.key: c for c in changes}
    task_by_key = {t.key: t for t in tasks}
    upgrade_of = {u.service: u for u in upgrades}
    out: list[Step] = []
    for number, wave in enumerate(desired.waves):
        for service in wave:
            upgrade = upgrade_of.get(service)
            phases = upgrade.phases if upgrade else ()
            for phase in (p for p in phases if p in BEFORE):
                out.append(Step("upgrade", service, phase, number, upgrade))
            for t in desired.tasks:
                if (
                    t.service == service
                    and t.scope == "service"
                    and t.key in task_by_key
                    and not t.needs_running
                ):
                    out.append(Step("task", t.key, "run", number))
            for inst in desired.instances:
                if inst.service != service:
                    continue
                for t in desired.tasks:
                    if (
                        t.service == service
                        and t.scope == "instance"
                        and t.node == inst.node
                        and not t.needs_running
                        and t.key in task_by_key
                    ):
                        out.append(Step("task", t.key, "run", number))
                change = by_key.get(inst.key)
                if change is not None:
                    out.append(Step("instance", inst.key, change.action, number))
                for t in desired.tasks:
                    if (
                        t.service == service
                        and t.node == inst.node
                        and t.needs_running
                        and t.key in task_by_key
                    ):
                        out.append(Step("task", t.key, "run", number))
            for phase in (p for p in phases if p not in BEFORE):
                out.append(Step("upgrade", service, phase, number, upgrade))
    last = len(desired.waves)
    for c in changes:
        if c.action == "remove":
            out.append(Step("instance", c.key, "remove", last))
    return tuple(out)


# --- showing a plan -------------------------------------------------------------------------

SYMBOLS = {
    "create": "+",
    "remove": "-",
    "replace": "-/+",
    "restart": "~",
    "reload": "~",
    "none": ".",
}
_COLORS = {"+": "32", "-": "31", "~": "33", "@": "36", ".": "2", "-/+": "35"}


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _shown(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def upgrade_lines(u: ReleaseUpgrade) -> list[str]:
    """What a release upgrade does, phase by phase, for a person."""
    lines = [
        f"backup: a dump of database {u.database or '(unnamed)'} before anything changes",
        f"expand: {u.after}'s schema additions, with its image; {u.before} runs on them",
        f"the instances of {u.service}, replaced one at a time behind the load balancers",
    ]
    if "migrate" in u.phases:
        lines.append("migrate: the data migrations, after the last instance")
    lines += [
        f"contract: what only {u.after} uses; from here on there is no way back to "
        f"{u.before} but the backup (until then a failure rolls {u.service} back by itself)",
        f"{u.replaces} does not run: these phases stand for it",
    ]
    return lines


def plan_text(plan: Plan, color: bool = False) -> str:
    """The plan for a person: per instance the action and why, the model values behind
    it, each config diff (secrets masked), the tasks, the order and a summary line."""
    out: list[str] = []
    for c in plan.changes:
        sym = SYMBOLS[c.action]
        head = f"{sym} {c.key}: {c.action}"
        out.append(_paint(head, _COLORS.get(sym, "0"), color))
        for r in c.reasons:
            out.append(f"    why: {r}")
        if c.causes:
            out.append("    model values:")
            for cause in c.causes:
                what = (
                    "changed (secret)"
                    if cause.secret
                    else f"{_shown(cause.before)} -> {_shown(cause.after)}"
                )
                where = f"  set at {cause.location}" if cause.location else ""
                origin = f" (value from {cause.origin})" if cause.origin else ""
                out.append(f"      {cause.key}: {what}{where}{origin}")
        if c.packages:
            out.append("    packages:")
            for p in c.packages:
                out.append(f"      {p.show()}")
        for f in c.files:
            note = " (a secret value changed: shown masked)" if f.secret_changed else ""
            out.append(f"    {f.path} {f.status}: needs {f.impact}{note}")
            if not f.diff and f.status == "modified":
                out.append("      (previous content not recorded: no diff)")
            for line in f.diff:
                if line[:1] in ("+", "-", "@") and not line.startswith(("---", "+++")):
                    line = _paint(line, _COLORS[line[:1]], color)
                out.append("      " + line)
    if plan.tasks:
        out.append("Bootstrap tasks to run:")
        for t in plan.tasks:
            out.append(f"  {t.key}: {t.why}")
    for u in plan.upgrades:
        out.append(_paint(f"Release upgrade of {u.service}: {u.before} -> {u.after}", "36", color))
        out.extend("    " + line for line in upgrade_lines(u))
    if plan.steps:
        out.append("Order (one at a time):")
        for number in sorted({s.wave for s in plan.steps}):
            items = [f"{s.key} ({s.action})" for s in plan.steps if s.wave == number]
            out.append(f"  wave {number + 1}: " + ", ".join(items))
    out.append(plan.summary())
    return "\n".join(out) + "\n"


def plan_markdown(plan: Plan, title: str = "saline plan") -> str:
    """A short review of the plan in Markdown (a merge request's comment, a CI summary):
    the summary, one table row per instance (action, why, model keys, packages), the
    tasks and the order. No config contents: the text or JSON plan has the diffs."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = [f"### {title}", "", plan.summary(), ""]
    if plan.changes:
        out += ["| instance | action | why | model keys | packages |", "|---|---|---|---|---|"]
        for c in plan.changes:
            keys = ", ".join(f"`{k.key}`" for k in c.causes[:4])
            if len(c.causes) > 4:
                keys += f" (+{len(c.causes) - 4})"
            why = "; ".join(r.split(": ", 1)[0] if len(r) > 80 else r for r in c.reasons)
            packages = str(len(c.packages)) if c.packages else ""
            out.append(f"| `{c.key}` | {c.action} | {cell(why)} | {cell(keys)} | {packages} |")
        out.append("")
    if plan.tasks:
        out.append("Bootstrap tasks: " + ", ".join(f"`{t.key}`" for t in plan.tasks))
        out.append("")
    for u in plan.upgrades:
        out.append(f"**Release upgrade of {u.service}: {u.before} -> {u.after}** (`{u.key}`)")
        out.append("")
        out.extend(f"- {line}" for line in upgrade_lines(u))
        out.append("")
    if plan.steps:
        waves = sorted({s.wave for s in plan.steps})
        out.append(
            "Order: "
            + " -> ".join(", ".join(s.key for s in plan.steps if s.wave == w) for w in waves)
        )
        out.append("")
    return "\n".join(out)

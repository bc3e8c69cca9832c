"""Release upgrades: a service moving from one OpenStack release to the next (its
formula's ``releases``), planned as phases around the replacement of its instances.

For each service whose release (``keystone:server:version``) changes, the plan gets:

1. ``backup``: a dump of its database, before anything changes (the way back once the
   schema is contracted);
2. ``expand``: the new release's schema additions, run with the new image: a superset
   both releases use, so the instances still on the old release keep serving;
3. the instances replaced one at a time (the day-2 engine: drain, swap, gate, ready);
4. ``migrate`` and ``contract`` after the last one: what only the new release can use.

Until the contract, a failure rolls the service back by itself: its instances return to
the old release, which runs on the expanded schema. After it, going back is refused: the
old release cannot use the contracted schema, and only the backup restores it.

The formula's bootstrap task the phases stand for (``replaces``: a full schema sync,
contract included) does not run during the upgrade; the engine records it done once the
contract ran, so the next plan has nothing left to do.

Everything here is pure: the plan's data and the checks. The engine runs the phases
(:mod:`.apply`), the stack runner does them (:mod:`.stack_runner`), the records keep
what was contracted and where the backup is (:mod:`.records`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Location, ModelError
from ..formulas import FormulaSet
from ..model import pillar_value
from ..release import Release

#: The phases of an upgrade, in the order they run; the instances go between expand and
#: migrate.
PHASES = ("backup", "expand", "migrate", "contract")
#: The phases before the instances.
BEFORE = ("backup", "expand")


class UpgradeRefused(ModelError):
    """A release change saline will not roll out: a downgrade past a contract."""


@dataclass(frozen=True)
class ReleaseUpgrade:
    service: str
    before: str
    after: str
    #: The pillar path naming the release (``keystone:server:version``).
    key: str
    #: The database that is dumped, migrated and contracted (its name).
    database: str
    #: The bootstrap task the phases stand for (its key, ``keystone/db-sync``).
    replaces: str
    #: The phases that run (migrate only when the formula has states for it).
    phases: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "from": self.before,
            "to": self.after,
            "key": self.key,
            "database": self.database,
            "replaces": self.replaces,
            "phases": list(self.phases),
        }


@dataclass(frozen=True)
class UpgradeRecord:
    """An upgrade's database phase that ran (records' ``upgrades.json``)."""

    service: str
    before: str
    after: str
    release: str
    #: ``expanded`` (both releases use the schema) or ``contracted`` (only ``after``).
    phase: str
    backup: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "from": self.before,
            "to": self.after,
            "release": self.release,
            "phase": self.phase,
            "backup": self.backup,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UpgradeRecord:
        return cls(
            str(data["service"]),
            str(data["from"]),
            str(data["to"]),
            str(data["release"]),
            str(data["phase"]),
            str(data["backup"]),
        )


def described(upgrades: Iterable[ReleaseUpgrade]) -> str:
    """``keystone zed -> 2025.1 (keystone:server:version), ...``: for a message."""
    return ", ".join(f"{u.service} {u.before} -> {u.after} ({u.key})" for u in upgrades)


def releases_running(
    release: Release | None,
    keys: Iterable[str],
    formulas: FormulaSet,
    pillars: Mapping[str, Mapping[str, Any]],
) -> dict[str, set[str]]:
    """Per service with ``releases``: the OpenStack releases its instances ``keys`` run,
    read from ``pillars`` (the nodes' pillars of ``release``, the recorded one)."""
    out: dict[str, set[str]] = {}
    if release is None:
        return out
    wanted = set(keys)
    for inst in release.instances:
        if inst.key not in wanted or inst.service not in formulas.services:
            continue
        spec = formulas.services[inst.service][1]
        if spec.releases is None:
            continue
        value = pillar_value(pillars.get(inst.node, {}), f"{spec.pillar}:{spec.releases.pillar}")
        if value is not None:
            out.setdefault(inst.service, set()).add(str(value))
    return out


def plan_upgrades(
    desired: Release,
    running: Mapping[str, set[str]],
    formulas: FormulaSet,
    pillars: Mapping[str, Mapping[str, Any]],
    records: Mapping[str, UpgradeRecord],
    locate: Callable[[str, str], tuple[str | None, str | None]] | None = None,
) -> tuple[ReleaseUpgrade, ...]:
    """The release upgrades from what runs (``running``: :func:`releases_running`) to
    ``desired`` (``pillars``: its nodes' pillars). A change to an earlier release is
    allowed only while no contract made the schema the later one's: ``records`` (the
    last upgrade record per service) says; else :class:`UpgradeRefused` names the key
    and the backup to restore."""
    out = []
    seen: set[str] = set()
    for inst in desired.instances:
        if inst.service in seen or inst.service not in formulas.services:
            continue
        seen.add(inst.service)
        spec = formulas.services[inst.service][1]
        releases = spec.releases
        have = running.get(inst.service)
        if releases is None or not have:
            continue
        key = f"{spec.pillar}:{releases.pillar}"
        pillar = pillars.get(inst.node, {})
        after = str(pillar_value(pillar, key))
        newest = max(have, key=releases.order)
        if releases.order(after) < releases.order(newest):
            where = _location(inst.node, key, locate)
            _check_downgrade(inst.service, newest, after, where, records)
            continue
        oldest = min(have, key=releases.order)
        if oldest == after:
            continue
        database = pillar_value(pillar, f"{spec.pillar}:{releases.database}")
        name = str(database.get("name", "")) if isinstance(database, Mapping) else ""
        phases = tuple(p for p in PHASES if p != "migrate" or releases.migrate)
        out.append(
            ReleaseUpgrade(
                inst.service,
                oldest,
                after,
                key,
                name,
                f"{inst.service}/{releases.replaces}",
                phases,
            )
        )
    return tuple(out)


def _location(
    node: str, key: str, locate: Callable[[str, str], tuple[str | None, str | None]] | None
) -> Location:
    """The model file and line that set ``key`` on ``node`` (where known)."""
    found = locate(node, key)[0] if locate else None
    path, _, line = (found or "").rpartition(":")
    if path and line.isdigit():
        return Location(path, int(line), node, f"parameters:{key}")
    return Location(found, None, node, f"parameters:{key}")


def _check_downgrade(
    service: str,
    newest: str,
    after: str,
    where: Location,
    records: Mapping[str, UpgradeRecord],
) -> None:
    record = records.get(service)
    if record is not None and record.after == newest and record.phase == "expanded":
        return  # the schema is a superset both use: going back is a rollback
    if record is not None and record.after == newest:
        raise UpgradeRefused(
            f"{service}: {newest} -> {after} is a downgrade, and the contract phase of "
            f"release {record.release} made its database {newest}'s only: {after} cannot "
            f"use it. Restore the backup taken before that upgrade ({record.backup}) into "
            f"the database by hand first; saline does not restore databases",
            where,
        )
    raise UpgradeRefused(
        f"{service}: {newest} -> {after} is a downgrade, and its database was made by "
        f"{newest} (no upgrade to {newest} with a backup was recorded): {after} cannot "
        "use it",
        where,
    )

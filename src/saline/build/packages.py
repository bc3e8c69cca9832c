"""The Debian packages in images, exactly. Pure.

An image's tag includes the exact versions of the Debian packages it installs, so a new
Debian security release gives new tags (and `saline plan` shows what changes) although no
formula changed. This module holds what that needs without touching the network:

* :class:`Suites`: the Debian suites an image is built from (the model chooses them,
  ``saline:images:suites``, per deployment and optionally per service);
* :func:`install_packages`: the packages a service's install states ask for, read from
  the states themselves (static YAML), so the build and the resolver agree on them;
* :class:`PackageSet`: package -> exact version, architecture and the suites carrying
  that version; its digest goes into the tag, its text into the image's label.

What apt resolves (which versions a list of names brings in) is :mod:`saline.runtime.apt`;
which resolution an image uses is :mod:`saline.build.resolve`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from debian.debian_support import Version

from ..errors import FormulaError, Location
from ..settings import DebianMirrors

#: The Debian releases the shipped formulas support (codename -> version).
RELEASES = {"bookworm": "12", "trixie": "13"}
#: The suites of a release an image may use beside the release itself.
POCKETS = ("updates", "security")
#: When the model names none: the release with its updates and security fixes.
DEFAULT_SUITES = ("bookworm", "bookworm-updates", "bookworm-security")


@dataclass(frozen=True)
class Suites:
    """The Debian suites an image is built from: one release's own suite first, then any
    of its ``-updates`` and ``-security`` suites."""

    names: tuple[str, ...] = DEFAULT_SUITES

    @property
    def release(self) -> str:
        return self.names[0]

    @property
    def label(self) -> str:
        """``bookworm``, ``bookworm+updates+security``: short, for image names and output."""
        pockets = [n.split("-", 1)[1] for n in self.names[1:]]
        return "+".join([self.release, *pockets])

    def sources(self, mirrors: DebianMirrors, keyring: str | None = None) -> list[str]:
        """apt's source lines (``deb [signed-by=KEYRING] URL SUITE main``)."""
        opts = f"[signed-by={keyring}] " if keyring else ""
        out = []
        for name in self.names:
            url = mirrors.security if name.endswith("-security") else mirrors.archive
            out.append(f"deb {opts}{url} {name} main")
        return out


def parse_suites(value: Any) -> Suites:
    """The suites a model names (a list of suite names), checked; ValueError saying what
    is wrong (the caller names the file and key)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(
            "must be a list of Debian suites, the release first "
            f"(for example [{', '.join(DEFAULT_SUITES)}])"
        )
    if len(set(value)) != len(value):
        raise ValueError(
            f"names a suite twice ({', '.join(value)}); a class's list and a node's are"
            " joined: to replace one, write ~suites"
        )
    release = value[0]
    if release not in RELEASES:
        known = ", ".join(RELEASES)
        raise ValueError(
            f"{release!r} is not a Debian release the formulas support (supported: {known});"
            " the release's own suite comes first"
        )
    allowed = [release, *(f"{release}-{p}" for p in POCKETS)]
    for name in value[1:]:
        if name not in allowed[1:]:
            raise ValueError(
                f"{name!r} is not a suite of {release} an image can use "
                f"(one of: {', '.join(allowed[1:])})"
            )
    ordered = tuple(n for n in allowed if n in value)
    return Suites(ordered)


# -- what install states install ---------------------------------------------------------


def _state_file(root: str, formula: str, state: str) -> str:
    """The file of a state (``keystone.install``) in its formula's folder."""
    parts = state.split(".")
    if parts[0] != formula:
        raise FormulaError(f"install state {state!r} is not in formula {formula!r}")
    rel = os.path.join(*parts[1:]) if len(parts) > 1 else ""
    for candidate in (rel + ".sls", os.path.join(rel, "init.sls")):
        path = os.path.join(root, candidate)
        if candidate != ".sls" and os.path.isfile(path):
            return path
    raise FormulaError(f"install state {state!r}: no {rel or 'init'}.sls in {root}")


def _pkg_names(state_id: str, args: Any) -> list[str]:
    names: list[str] = []
    explicit = None
    for item in args if isinstance(args, list) else []:
        if not isinstance(item, dict):
            continue
        if "pkgs" in item:
            for p in item["pkgs"] or []:
                names.append(next(iter(p)) if isinstance(p, dict) else str(p))
        if "name" in item:
            explicit = str(item["name"])
    if not names:
        names.append(explicit or state_id)
    return names


def install_packages(root: str, formula: str, states: list[str]) -> list[str]:
    """The Debian packages the install ``states`` of a formula (in folder ``root``) ask
    for with ``pkg.installed``, in order, following ``include``. Install states are plain
    YAML (they see no pillar); one that needs Jinja is a FormulaError naming it: the
    resolver must know the names before anything is built."""
    out: list[str] = []
    seen: set[str] = set()

    def read(state: str) -> None:
        if state in seen:
            return
        seen.add(state)
        path = _state_file(root, formula, state)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if "{%" in text or "{{" in text:
            raise FormulaError(
                "an install state is plain YAML (saline reads its packages before any"
                " build): no Jinja",
                Location(path),
            )
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise FormulaError(f"not valid YAML: {e}", Location(path)) from None
        if not isinstance(data, dict):
            raise FormulaError("not a mapping of states", Location(path))
        for included in data.get("include", []) or []:
            read(str(included))
        for state_id, body in data.items():
            if state_id in ("include", "extend") or not isinstance(body, dict):
                continue
            for fn, args in body.items():
                if fn in ("pkg.installed", "pkg.latest"):
                    for name in _pkg_names(str(state_id), args):
                        if name not in out:
                            out.append(name)

    for state in states:
        read(state)
    return out


# -- exact versions ----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str
    #: The suites of the image's archive that carry this exact version.
    suites: tuple[str, ...] = ()

    @property
    def security(self) -> bool:
        return any(s.endswith("-security") for s in self.suites)


class PackageSet(Mapping[str, Package]):
    """Packages by name: what one image adds to its parent, or what an image holds."""

    def __init__(self, packages: list[Package] | None = None) -> None:
        self._by_name = {p.name: p for p in sorted(packages or [])}

    def __getitem__(self, name: str) -> Package:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackageSet) and self._by_name == other._by_name

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return f"PackageSet({len(self)} packages, {self.digest()})"

    def versions(self) -> dict[str, str]:
        return {n: p.version for n, p in self._by_name.items()}

    def digest(self) -> str:
        """Of the names, versions and architectures (not the suites: where a version is
        published says nothing about what is in the image)."""
        text = "\n".join(f"{p.name}={p.version}:{p.arch}" for p in self._by_name.values())
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def merged(self, other: PackageSet) -> PackageSet:
        """This set with ``other``'s packages on top (a child image's view)."""
        return PackageSet(list({**self._by_name, **other._by_name}.values()))

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "version": p.version, "arch": p.arch, "suites": list(p.suites)}
            for p in self._by_name.values()
        ]

    @classmethod
    def from_json(cls, data: Any) -> PackageSet:
        """From :meth:`to_json`'s output; ValueError when it is not that."""
        if not isinstance(data, list):
            raise ValueError("not a list of packages")
        out = []
        for item in data:
            try:
                out.append(
                    Package(
                        str(item["name"]),
                        str(item["version"]),
                        str(item["arch"]),
                        tuple(str(s) for s in item.get("suites", [])),
                    )
                )
            except (KeyError, TypeError):
                raise ValueError(f"not a package: {item!r}") from None
        return cls(out)

    def label(self) -> str:
        """Compact, for an image label: ``name=version:arch`` separated by spaces."""
        return " ".join(f"{p.name}={p.version}:{p.arch}" for p in self._by_name.values())

    def apt_pins(self) -> str:
        """apt preferences holding every package at its version (priority above 1000:
        apt installs exactly that, even as a downgrade)."""
        blocks = [
            f"Package: {p.name}\nPin: version {p.version}\nPin-Priority: 1001\n"
            for p in self._by_name.values()
        ]
        return "\n".join(blocks)


def newer(candidate: str, installed: str) -> bool:
    """``candidate`` is a later Debian version than ``installed`` (dpkg's ordering)."""
    return Version(candidate) > Version(installed)


def manifest(packages: PackageSet) -> str:
    """An image's /etc/saline/packages.json: every package with its version and
    architecture (not the suites: the same image may be resolved anywhere)."""
    rows = [{"name": p.name, "version": p.version, "arch": p.arch} for p in packages.values()]
    return json.dumps(rows, indent=1) + "\n"


@dataclass(frozen=True)
class Update:
    """A package of an image for which its suites now offer a later version."""

    name: str
    installed: str
    candidate: str
    suite: str

    @property
    def security(self) -> bool:
        return self.suite.endswith("-security")


def updates(packages: PackageSet, published: Mapping[str, list[tuple[str, str]]]) -> list[Update]:
    """Each package of ``packages`` for which ``published`` (name -> [(version, suite)],
    what the suites offer now) has a later version: the latest, and the suite it is in
    (the security suite first when two carry it)."""
    out = []
    for p in packages.values():
        offered = published.get(p.name, [])
        if not offered:
            continue
        best = max(offered, key=lambda vs: (Version(vs[0]), vs[1].endswith("-security"), vs[1]))
        if newer(best[0], p.version):
            out.append(Update(p.name, p.version, best[0], best[1]))
    return out

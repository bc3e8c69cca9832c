"""A private apt on this machine: which exact package versions some Debian suites offer.

The host's own ``apt-get``/``apt-cache`` (every Debian machine has them) with a folder of
their own: its sources, lists, cache and dpkg status, nothing of the host's apt setup
(``APT_CONFIG`` points at a file that names only that folder). Nothing is installed:
``apt-get --simulate`` says what an install would bring in, from a given dpkg status (an
empty one for a base image, the base's packages for a service image). Why not a solver of
our own: apt's dependency resolution (virtual packages, alternatives, Multi-Arch,
Essential) is what the image build runs, so only apt can say what the build installs.

Every command here has a time limit; a failure is an :class:`AptError` with apt's words.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import SalineError
from .process import CommandError, run

#: apt-get update over a mirror: the lists of a release are about 15 MB.
UPDATE_TIMEOUT = 600.0
#: One simulation or query (the first one of a folder builds apt's cache: a few seconds).
QUERY_TIMEOUT = 300.0
#: apt-get download of a few packages (a kernel is about 70 MB).
DOWNLOAD_TIMEOUT = 900.0
#: Debian's archive keys on any Debian machine (package debian-archive-keyring).
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# "Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian:12.8/stable [amd64]) []"
_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) (.*?) \[([^\]]+)\]\)", re.M)
# "libc6 | 2.36-9+deb12u4 | http://deb.debian.org/debian bookworm/main amd64 Packages"
# (apt-cache pads each column to its widest entry: any number of spaces)
_MADISON = re.compile(r"^\s*(\S+)\s+\|\s+(\S+)\s+\|\s+\S+\s+(\S+?)/\S+\s+(\S+)\s+Packages$", re.M)


class AptError(SalineError):
    pass


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    arch: str


class AptArchive:
    """apt over ``sources`` (source lines) in the folder ``root`` (created)."""

    def __init__(self, root: str, sources: list[str], architecture: str = "amd64") -> None:
        self.root = root
        self.sources = sources
        self.architecture = architecture
        for sub in ("lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.config = os.path.join(root, "apt.conf")
        with open(os.path.join(root, "sources.list"), "w") as fh:
            fh.write("\n".join(sources) + "\n")
        empty = os.path.join(root, "status.empty")
        if not os.path.exists(empty):
            open(empty, "w").close()
        settings = {
            "Dir::State": root,
            "Dir::State::Lists": os.path.join(root, "lists"),
            "Dir::State::status": empty,
            "Dir::Cache": os.path.join(root, "cache"),
            "Dir::Etc::SourceList": os.path.join(root, "sources.list"),
            "Dir::Etc::SourceParts": os.path.join(root, "etc", "parts"),
            "Dir::Etc::Parts": os.path.join(root, "etc", "parts"),
            "Dir::Etc::Preferences": os.path.join(root, "etc", "preferences"),
            "Dir::Etc::PreferencesParts": os.path.join(root, "etc", "prefs"),
            "APT::Architecture": architecture,
            "APT::Architectures": architecture,
            "Acquire::Languages": "none",
            "Acquire::GzipIndexes": "false",
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled": "false",
            "Debug::NoLocking": "true",
            "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false",
        }
        with open(self.config, "w") as fh:
            for key, value in settings.items():
                fh.write(f'{key} "{value}";\n')

    @staticmethod
    def folder_for(parent: str, sources: list[str]) -> str:
        """One folder per set of sources, under ``parent``."""
        return os.path.join(parent, hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16])

    def _run(self, argv: list[str], timeout: float, what: str, cwd: str | None = None) -> str:
        env = {**os.environ, "APT_CONFIG": self.config, "LC_ALL": "C"}
        try:
            return run(argv, timeout=timeout, env=env, cwd=cwd).stdout
        except CommandError as e:
            lines = [x for x in (e.stderr or e.stdout or "").strip().splitlines() if x]
            why = "\n".join("  " + x for x in lines[-8:]) or "  (no output)"
            raise AptError(f"apt could not {what}:\n{why}") from None

    def update(self) -> None:
        """Fetch the suites' package lists (apt-get update)."""
        out = self._run(["apt-get", "-q", "update"], UPDATE_TIMEOUT, "read the package lists")
        if "Err:" in out or "W: Failed" in out:
            raise AptError(f"apt could not read every package list:\n{out.strip()[-2000:]}")

    def updated(self) -> bool:
        return any(name.endswith("_Packages") for name in os.listdir(self._lists()))

    def _lists(self) -> str:
        return os.path.join(self.root, "lists")

    def required(self) -> list[str]:
        """The packages marked Essential or of Priority required: what mmdebstrap's
        ``minbase`` variant installs (with apt), the base image's system."""
        names: set[str] = set()
        for entry in sorted(os.listdir(self._lists())):
            if not entry.endswith("_Packages"):
                continue
            name = None
            with open(os.path.join(self._lists(), entry), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Package: "):
                        name = line[9:].strip()
                    elif name and line in ("Essential: yes\n", "Priority: required\n"):
                        names.add(name)
        return sorted(names)

    def simulate(self, names: Iterable[str], status: str | None = None) -> list[Resolved]:
        """What ``apt-get install NAMES`` installs on a system whose dpkg status is the
        file ``status`` (None: an empty system): each package with its exact version."""
        argv = ["apt-get", "-q", "--simulate", "install", *names]
        if status:
            argv[1:1] = ["-o", f"Dir::State::status={status}"]
        out = self._run(argv, QUERY_TIMEOUT, f"resolve {' '.join(names)}")
        return [Resolved(m[0], m[1], m[3]) for m in _INST.findall(out)]

    def published(self, names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """Every version of each package the suites offer: name -> [(version, suite)]."""
        wanted = sorted(set(names))
        out: dict[str, list[tuple[str, str]]] = {n: [] for n in wanted}
        if not wanted:
            return out
        text = self._run(["apt-cache", "madison", *wanted], QUERY_TIMEOUT, "list versions")
        for name, offered in parse_madison(text).items():
            if name in out:
                out[name] = offered
        return out

    def stanzas(self, packages: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The archive's record of each (name, version) still published, for a dpkg
        status file; versions no longer published are left out."""
        wanted = list(packages)
        if not wanted:
            return {}
        text = self._run(
            ["apt-cache", "show", "--no-all-versions", *(f"{n}={v}" for n, v in wanted)],
            QUERY_TIMEOUT,
            "show packages",
        )
        out: dict[tuple[str, str], str] = {}
        for block in text.strip().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line[:60])
            key = (fields.get("Package", ""), fields.get("Version", ""))
            if key in set(wanted):
                out[key] = block.strip()
        return out

    def download(self, names: Iterable[str], dest: str) -> list[str]:
        """Download the packages ``names`` (``NAME`` or ``NAME=VERSION``) into the folder
        ``dest`` (created) with ``apt-get download``: the files apt checked against the
        suites' signed lists, nothing installed. Their paths, in the order asked for."""
        wanted = list(names)
        if not wanted:
            return []
        os.makedirs(dest, exist_ok=True)
        # As root, apt drops to its _apt user to download, who cannot write to a folder
        # of root's: it warns and downloads as root all the same. Say so up front.
        argv = ["apt-get", "-q", "download", *wanted]
        if os.geteuid() == 0:
            argv[1:1] = ["-o", "APT::Sandbox::User=root"]
        self._run(argv, DOWNLOAD_TIMEOUT, f"download {' '.join(wanted)}", cwd=dest)
        present = sorted(f for f in os.listdir(dest) if f.endswith(".deb"))
        paths = []
        for item in wanted:
            name, _, version = item.partition("=")
            prefix = f"{name}_{version.replace(':', '%3a')}_" if version else f"{name}_"
            found = [f for f in present if f.startswith(prefix)]
            if len(found) != 1:
                what = "no file" if not found else f"{len(found)} files ({', '.join(found)})"
                raise AptError(f"apt downloaded {item}, but {dest} has {what} for it")
            paths.append(os.path.join(dest, found[0]))
        return paths


def deb_file_name(name: str, version: str, arch: str) -> str:
    """The file name ``apt-get download`` gives a package: ``NAME_VERSION_ARCH.deb``, an
    epoch's colon written ``%3a``. Pure."""
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def parse_madison(text: str) -> dict[str, list[tuple[str, str]]]:
    """``apt-cache madison``'s table: name -> [(version, suite)], in its order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, version, suite, _arch in _MADISON.findall(text):
        offered = out.setdefault(name, [])
        if (version, suite) not in offered:
            offered.append((version, suite))
    return out


def status_file(records: list[tuple[str, str, str, str | None]]) -> str:
    """A dpkg status file of installed packages: (name, version, arch, archive record or
    None). A package whose record is gone from the archive gets a minimal one."""
    blocks = []
    for name, version, arch, record in records:
        if record is None:
            record = f"Package: {name}\nVersion: {version}\nArchitecture: {arch}"
        lines = [x for x in record.splitlines() if not x.startswith("Status:")]
        lines.insert(1, "Status: install ok installed")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"

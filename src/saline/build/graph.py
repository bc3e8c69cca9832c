"""The image build graph: base -> salt layer -> one image per service. Pure.

Every image is tagged by a digest of everything that goes into it, so the same inputs
give the same tag on any machine and an image whose tag exists is never rebuilt:

* ``base``: the Debian suite, packages and hooks of its root file system (not the
  mirrors it is downloaded from: where, not what);
* ``salt``: the base's tag, the pinned Salt packages, the entrypoint, its recipe;
* a service: the salt layer's tag, every file of its formula, the service's metadata.

The formulas are not in the shared Salt layer: each service image adds only its own
formula, so changing one formula rebuilds only that formula's images.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from ..formulas import Formula, Service
from ..settings import DebianMirrors

# -- the Debian root file system of the base image (built by .rootfs with mmdebstrap) ----

SUITE = "bookworm"


def debian_sources(mirrors: DebianMirrors, suite: str = SUITE) -> list[str]:
    """bookworm, bookworm-updates and bookworm-security (keystone 22.0.2 is in security).
    Pure."""
    return [
        f"deb {mirrors.archive} {suite} main",
        f"deb {mirrors.archive} {suite}-updates main",
        f"deb {mirrors.security} {suite}-security main",
    ]


# Kept in the image's apt and dpkg configuration, so packages installed later on top of
# it (service images) follow them too: no Recommends, no docs, man pages or locales.
APT_OPTIONS = ['Apt::Install-Recommends "false"', 'Apt::Install-Suggests "false"']
DPKG_OPTIONS = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
]


def mmdebstrap_command(
    out: str, include: list[str], hooks: list[str], mirrors: DebianMirrors
) -> list[str]:
    """The mmdebstrap command line for a minbase rootfs tarball. Pure."""
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet"]
    cmd += [f"--aptopt={o}" for o in APT_OPTIONS]
    cmd += [f"--dpkgopt={o}" for o in DPKG_OPTIONS]
    if include:
        cmd.append("--include=" + ",".join(include))
    for hook in hooks:
        cmd.append("--customize-hook=" + hook)
    return [*cmd, SUITE, out, *debian_sources(mirrors)]


def rootfs_digest(
    include: list[str], hooks: list[str], files: dict[str, tuple[str, int]] | None = None
) -> str:
    """A digest of what goes into a rootfs, for tagging what is built from it. Pure.

    The suite and its components (the sources' suites, see :func:`debian_sources`), the
    packages, hooks, added files and apt/dpkg options are in it. The mirrors are not: they
    say where packages are downloaded from, not what is installed, so the same recipe
    built through a local mirror gets the same tag (and a tag never depends on a setting
    of the machine that built it).
    """
    added = [f"{path}:{mode:o}:{text}" for path, (text, mode) in sorted((files or {}).items())]
    sources = [line.split(" ", 2)[2] for line in debian_sources(DebianMirrors())]
    parts = [SUITE, *sources, *sorted(include), *hooks, *APT_OPTIONS, *DPKG_OPTIONS]
    return hashlib.sha256("\n".join([*parts, *added]).encode()).hexdigest()[:16]


# -- the image graph ---------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
SALT_REQUIREMENTS = os.path.join(HERE, "salt-requirements.txt")
ENTRYPOINT = os.path.join(HERE, "entrypoint.py")
#: Bump when a recipe below changes in a way its text does not show.
RECIPE_VERSION = "2"

BASE_PACKAGES = ["python3", "ca-certificates"]
# apt cleaned (minbase never cleans: 136 MB stayed in one image).
BASE_HOOKS = [
    'chroot "$1" apt-get clean && rm -rf "$1"/var/lib/apt/lists/*'
    ' && mkdir -p "$1/var/lib/apt/lists/partial"',
]
# policy-rc.d: package scripts never start services in an image build (or a container).
BASE_FILES = {"/usr/sbin/policy-rc.d": ("#!/bin/sh\nexit 101\n", 0o755)}
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SALT_CONTAINERFILE = """\
FROM {parent} AS warm
COPY site /opt/saline/site
COPY entrypoint.py /usr/local/bin/saline-entrypoint
ENV PYTHONPATH=/opt/saline/site
# A real Salt run (under -OO) writes bytecode for exactly the modules a run imports (first
# run 5.4 s without it, 1.1 s with), instead of compiling all of Salt (which doubles its
# size); outside Salt's loader folders only that bytecode is kept (saline-entrypoint warm).
RUN chmod 755 /usr/local/bin/saline-entrypoint \\
 && mkdir -p /etc/saline /srv/saline/formulas \\
 && /usr/local/bin/saline-entrypoint warm

# Only the finished result goes into the layer: files deleted in a later layer would
# still weigh in the earlier one.
FROM {parent}
COPY --from=warm /opt/saline/site /opt/saline/site
COPY --from=warm /usr/local/bin/saline-entrypoint /usr/local/bin/saline-entrypoint
RUN mkdir -p /etc/saline /srv/saline/formulas
ENV PYTHONPATH=/opt/saline/site
LABEL saline.image=salt
"""

SERVICE_CONTAINERFILE = """\
FROM {parent}
COPY formula /srv/saline/formulas/{formula}
COPY service.json /etc/saline/service.json
ENV DEBIAN_FRONTEND=noninteractive
ARG SALINE_APT_CACHE=0
RUN /usr/local/bin/saline-entrypoint install
LABEL saline.image={service} saline.formula={formula}
ENTRYPOINT ["/usr/local/bin/saline-entrypoint"]
CMD ["run"]
"""


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _file_sha(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def service_metadata(formula: Formula, name: str, svc: Service) -> dict[str, object]:
    """What the entrypoint needs to know about its service (/etc/saline/service.json)."""
    return {
        "service": name,
        "formula": formula.name,
        "install": svc.install,
        "configure": svc.configure,
        "bootstrap": [t.model_dump() for t in svc.bootstrap],
        "command": svc.command,
        "user": svc.user,
    }


@dataclass(frozen=True)
class ImageSpec:
    name: str  # "base", "salt", or the service's name
    kind: str  # "base" | "salt" | "service"
    tag: str
    parent: str | None  # name of the image it is built on
    #: Files of the build context: path in the context -> source path on this machine.
    files: dict[str, str] = field(default_factory=dict)
    #: Generated files of the build context: path -> content.
    generated: dict[str, str] = field(default_factory=dict)
    formula: str | None = None

    def repository(self) -> str:
        return f"saline/{self.name}"

    def ref(self, registry: str | None) -> str:
        host = registry or "localhost"
        return f"{host}/{self.repository()}:{self.tag}"


def plan_images(services: dict[str, tuple[Formula, Service]]) -> list[ImageSpec]:
    """Images to build for ``services`` (name -> formula, spec), in build order."""
    base_tag = _sha(
        "base", RECIPE_VERSION, rootfs_digest(BASE_PACKAGES, BASE_HOOKS, BASE_FILES), PATH_ENV
    )
    base = ImageSpec("base", "base", base_tag, None)
    with open(SALT_REQUIREMENTS) as fh:
        requirements = fh.read()
    salt_tag = _sha(
        "salt", RECIPE_VERSION, base_tag, requirements, _file_sha(ENTRYPOINT), SALT_CONTAINERFILE
    )
    salt = ImageSpec(
        "salt",
        "salt",
        salt_tag,
        "base",
        files={"entrypoint.py": ENTRYPOINT},
        generated={"Containerfile": SALT_CONTAINERFILE.format(parent="{parent}")},
    )
    out = [base, salt]
    for name, (formula, svc) in sorted(services.items()):
        files = {f"formula/{rel}": os.path.join(formula.root, rel) for rel in formula.files()}
        meta = json.dumps(service_metadata(formula, name, svc), indent=2, sort_keys=True) + "\n"
        containerfile = SERVICE_CONTAINERFILE.format(
            parent="{parent}", formula=formula.name, service=name
        )
        digest_parts = [f"{rel}={_file_sha(src)}" for rel, src in sorted(files.items())]
        tag = _sha("service", RECIPE_VERSION, salt_tag, name, meta, containerfile, *digest_parts)
        out.append(
            ImageSpec(
                name,
                "service",
                tag,
                "salt",
                files=files,
                generated={"Containerfile": containerfile, "service.json": meta},
                formula=formula.name,
            )
        )
    return out

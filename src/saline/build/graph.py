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
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..formulas import Formula, Service
from ..settings import DebianMirrors
from .packages import PackageSet, Suites, install_packages, manifest

# -- the Debian root file system of the base image (built by .rootfs with mmdebstrap) ----


def debian_sources(mirrors: DebianMirrors, suites: Suites | None = None) -> list[str]:
    """apt's source lines for ``suites`` (by default bookworm, bookworm-updates and
    bookworm-security). Pure."""
    return (suites or Suites()).sources(mirrors)


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
    out: str,
    include: list[str],
    hooks: list[str],
    mirrors: DebianMirrors,
    suites: Suites | None = None,
    pins: str | None = None,
) -> list[str]:
    """The mmdebstrap command line for a minbase rootfs tarball. Pure. ``pins``: a file
    of apt preferences holding each package at its version while the rootfs is built
    (see :meth:`.packages.PackageSet.apt_pins`); it is not left in the rootfs."""
    suites = suites or Suites()
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet"]
    if pins:
        cmd.append(
            '--setup-hook=mkdir -p "$1/etc/apt/preferences.d" && cp '
            + shlex.quote(pins)
            + ' "$1/etc/apt/preferences.d/saline.pref"'
        )
    cmd += [f"--aptopt={o}" for o in APT_OPTIONS]
    cmd += [f"--dpkgopt={o}" for o in DPKG_OPTIONS]
    if include:
        cmd.append("--include=" + ",".join(include))
    for hook in hooks:
        cmd.append("--customize-hook=" + hook)
    if pins:
        cmd.append('--customize-hook=rm -f "$1/etc/apt/preferences.d/saline.pref"')
    return [*cmd, suites.release, out, *debian_sources(mirrors, suites)]


def rootfs_digest(
    include: list[str],
    hooks: list[str],
    files: dict[str, tuple[str, int]] | None = None,
    suites: Suites | None = None,
) -> str:
    """A digest of what goes into a rootfs, for tagging what is built from it. Pure.

    The suite and its components (the sources' suites, see :func:`debian_sources`), the
    packages, hooks, added files and apt/dpkg options are in it. The mirrors are not: they
    say where packages are downloaded from, not what is installed, so the same recipe
    built through a local mirror gets the same tag (and a tag never depends on a setting
    of the machine that built it).
    """
    added = [f"{path}:{mode:o}:{text}" for path, (text, mode) in sorted((files or {}).items())]
    suites = suites or Suites()
    sources = [line.split(" ", 2)[2] for line in debian_sources(DebianMirrors(), suites)]
    parts = [suites.release, *sources, *sorted(include), *hooks, *APT_OPTIONS, *DPKG_OPTIONS]
    return hashlib.sha256("\n".join([*parts, *added]).encode()).hexdigest()[:16]


# -- the image graph ---------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
SALT_REQUIREMENTS = os.path.join(HERE, "salt-requirements.txt")
ENTRYPOINT = os.path.join(HERE, "entrypoint.py")
#: Bump when a recipe below changes in a way its text does not show.
RECIPE_VERSION = "3"

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

# saline.pref holds every package the install brings in at its resolved version (the tag
# says which); it goes once they are installed. packages.json: every package of the image.
# A formula's common layer (formula.yml ``common``): its install states, the same way.
COMMON_CONTAINERFILE = """\
FROM {parent}
COPY formula /srv/saline/formulas/{formula}
{uses}COPY service.json packages.json /etc/saline/
COPY saline.pref /etc/apt/preferences.d/saline.pref
ENV DEBIAN_FRONTEND=noninteractive
ARG SALINE_APT_CACHE=0
RUN /usr/local/bin/saline-entrypoint install && rm /etc/apt/preferences.d/saline.pref
LABEL saline.image={image} saline.formula={formula}
"""

SERVICE_CONTAINERFILE = """\
FROM {parent}
COPY formula /srv/saline/formulas/{formula}
{uses}COPY service.json packages.json /etc/saline/
COPY saline.pref /etc/apt/preferences.d/saline.pref
ENV DEBIAN_FRONTEND=noninteractive
ARG SALINE_APT_CACHE=0
RUN /usr/local/bin/saline-entrypoint install && rm /etc/apt/preferences.d/saline.pref
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
    out: dict[str, object] = {
        "service": name,
        "formula": formula.name,
        "install": svc.install,
        "configure": svc.configure,
        "bootstrap": [t.model_dump() for t in svc.bootstrap],
        "command": svc.command,
        "user": svc.user,
    }
    if svc.releases is not None:
        # A release upgrade's database phases (`saline-entrypoint upgrade PHASE`).
        out["upgrade"] = svc.releases.phases()
    return out


@dataclass(frozen=True)
class Recipe:
    """What an image is made of, short of its packages' exact versions: what
    :data:`Resolve` gets to say which exact packages the image installs."""

    #: A digest of everything but the versions; with them, it makes the tag.
    key: str
    kind: str  # "base" | "common" | "service"
    image: str
    suites: Suites
    #: The packages asked for: the base's include list, a service's install states'.
    names: tuple[str, ...]
    #: What the image is built on (a base: nothing).
    installed: PackageSet


#: Which exact packages (what the image adds to ``installed``) a recipe installs: the
#: build's lock, an earlier build's record or apt (:mod:`.resolve`); a fixed answer in
#: tests.
Resolve = Callable[[Recipe], PackageSet]


@dataclass(frozen=True)
class ImageSpec:
    #: "base", "salt", "FORMULA-common" or the service's name ("base-LABEL"... for other
    #: suites)
    name: str
    kind: str  # "base" | "salt" | "common" | "service"
    tag: str
    parent: str | None  # name of the image it is built on
    #: Files of the build context: path in the context -> source path on this machine.
    files: dict[str, str] = field(default_factory=dict)
    #: Generated files of the build context: path -> content.
    generated: dict[str, str] = field(default_factory=dict)
    formula: str | None = None
    suites: Suites = field(default_factory=Suites)
    #: The recipe's digest (the tag without the packages' versions).
    recipe: str = ""
    #: The Debian packages this image adds to its parent, exactly.
    packages: PackageSet = field(default_factory=PackageSet)
    #: Every Debian package in the image (its parent's and its own).
    all_packages: PackageSet = field(default_factory=PackageSet)

    def repository(self) -> str:
        image = self.name if self.kind in ("service", "common") else self.kind
        return f"saline/{image}"

    def ref(self, registry: str | None) -> str:
        host = registry or "localhost"
        return f"{host}/{self.repository()}:{self.tag}"

    def labels(self) -> dict[str, str]:
        """What the build records in the image: its recipe and its own packages (an
        image's record of what it installed, read back by :mod:`.resolve`)."""
        return {"saline.recipe": self.recipe, "saline.packages": self.packages.label()}


def _layer_names(groups: list[Suites]) -> dict[Suites, str]:
    """The base and salt images' name suffix per suite set: none for the first (``base``,
    ``salt``: the default suites when some service uses them; the stack's node containers
    run that ``base``), the suites for the others (``base-bookworm-security``)."""
    return {g: "" if i == 0 else "-" + g.label.replace("+", "-") for i, g in enumerate(groups)}


def plan_images(
    services: dict[str, tuple[Formula, Service]],
    resolve: Resolve,
    suites: Mapping[str, Suites] | None = None,
) -> list[ImageSpec]:
    """Images to build for ``services`` (name -> formula, spec), in build order: per set
    of Debian suites (``suites``: per service, default :class:`Suites`'s) a base and a
    Salt layer, then each service's image. ``resolve`` gives each image's exact packages
    (base first: a service's resolution starts from its base's packages)."""
    suites = suites or {}
    with open(SALT_REQUIREMENTS) as fh:
        requirements = fh.read()
    groups = sorted(
        {suites.get(name, Suites()) for name in services} or {Suites()},
        key=lambda g: (g != Suites(), g.names),
    )
    suffix = _layer_names(groups)
    out: list[ImageSpec] = []
    layers: dict[Suites, tuple[ImageSpec, ImageSpec]] = {}
    for group in groups:
        rootfs = rootfs_digest(BASE_PACKAGES, BASE_HOOKS, BASE_FILES, group)
        key = _sha("base", RECIPE_VERSION, rootfs, PATH_ENV)
        name = "base" + suffix[group]
        own = resolve(Recipe(key, "base", name, group, tuple(BASE_PACKAGES), PackageSet()))
        base = ImageSpec(
            name,
            "base",
            _sha(key, own.digest()),
            None,
            suites=group,
            recipe=key,
            packages=own,
            all_packages=own,
        )
        salt_tag = _sha(
            "salt",
            RECIPE_VERSION,
            base.tag,
            requirements,
            _file_sha(ENTRYPOINT),
            SALT_CONTAINERFILE,
        )
        salt = ImageSpec(
            "salt" + suffix[group],
            "salt",
            salt_tag,
            base.name,
            files={"entrypoint.py": ENTRYPOINT},
            generated={"Containerfile": SALT_CONTAINERFILE.format(parent="{parent}")},
            suites=group,
            recipe=salt_tag,
            all_packages=own,
        )
        layers[group] = (base, salt)
        out += [base, salt]

    def installed(
        kind: str,
        name: str,
        formula: Formula,
        group: Suites,
        parent: ImageSpec,
        installs: list[str],
        containerfile: str,
        meta: str,
    ) -> ImageSpec:
        """An image of ``formula``'s files whose install states (``installs``) run on
        ``parent``: a service's, or a formula's common layer."""
        files = {f"formula/{rel}": os.path.join(formula.root, rel) for rel in formula.files()}
        for used in formula.uses:
            files |= {
                f"uses/{used.name}/{rel}": os.path.join(used.root, rel) for rel in used.files()
            }
        digest_parts = [f"{rel}={_file_sha(src)}" for rel, src in sorted(files.items())]
        key = _sha(kind, RECIPE_VERSION, parent.tag, name, meta, containerfile, *digest_parts)
        wanted = tuple(install_packages(formula.root, formula.name, installs))
        below = parent.all_packages
        own = resolve(Recipe(key, kind, name, group, wanted, below))
        every = below.merged(own)
        spec = ImageSpec(
            name,
            kind,
            _sha(key, own.digest()),
            parent.name,
            files=files,
            generated={
                "Containerfile": containerfile,
                "service.json": meta,
                "packages.json": manifest(every),
                "saline.pref": own.apt_pins(),
            },
            formula=formula.name,
            suites=group,
            recipe=key,
            packages=own,
            all_packages=every,
        )
        out.append(spec)
        return spec

    shared: dict[tuple[str, Suites], ImageSpec] = {}
    for name, (formula, svc) in sorted(services.items()):
        group = suites.get(name, Suites())
        parent = layers[group][1]
        # The formulas it uses, beside its own (the folders under `uses/` in the context).
        uses = "COPY uses /srv/saline/formulas/\n" if formula.uses else ""
        # The formula's shared layers, each built once before the first service on it:
        # its common one, then the service's named one (on the common one).
        chain = (
            []
            if formula.meta.common is None
            else [(formula.meta.common_image(), formula.meta.common)]
        )
        if svc.layer is not None:
            chain.append((formula.meta.layer_image(svc.layer), formula.meta.layers[svc.layer]))
        for layer, spec in chain:
            image = layer + suffix[group]
            if (image, group) not in shared:
                about = {"service": image, "formula": formula.name, "install": spec.install}
                shared[(image, group)] = installed(
                    "common",
                    image,
                    formula,
                    group,
                    parent,
                    spec.install,
                    COMMON_CONTAINERFILE.format(
                        parent="{parent}", formula=formula.name, image=image, uses=uses
                    ),
                    json.dumps(about, indent=2, sort_keys=True) + "\n",
                )
            parent = shared[(image, group)]
        installed(
            "service",
            name,
            formula,
            group,
            parent,
            svc.install,
            SERVICE_CONTAINERFILE.format(
                parent="{parent}", formula=formula.name, service=name, uses=uses
            ),
            json.dumps(service_metadata(formula, name, svc), indent=2, sort_keys=True) + "\n",
        )
    return out

"""saline's settings: one typed tree, resolved once by the command line, passed explicitly.

Nothing below the CLI reads an environment variable: the library gets every folder,
address and switch it needs as a parameter. :func:`resolve` builds :class:`Settings`
from, in this order of precedence:

1. command-line flags (``--model``, ``--registry``, ...);
2. environment variables (``SALINE_MODEL``, ``SALINE_REGISTRY``, ...; all listed in
   docs/configuration.md);
3. the project file ``saline.toml`` in the current folder or the nearest parent
   (paths in it are relative to its own folder);
4. defaults.

:func:`resolve` is pure: it gets the flags, the environment and the current folder as
arguments, and only reads the project file it finds.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Location, SettingsError

PROJECT_FILE = "saline.toml"
DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEFAULT_DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
TARGETS = ("compose", "kubernetes")
#: Kubernetes' access modes for a volume every replica of a Deployment mounts.
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")

#: Keys a project file may set, with what each must be.
_PROJECT_KEYS: dict[str, str] = {
    "model": "a folder",
    "formulas": "a list of folders",
    "registry": "HOST:PORT",
    "stack": "a name",
    "target": "one of " + ", ".join(TARGETS),
    "state_dir": "a folder",
    "cache_dir": "a folder",
    "debian_mirror": "a URL",
    "debian_security_mirror": "a URL",
    "kubeconfig": "a file",
    "kube_context": "a context name",
    "kube_namespace": "a namespace",
    "kube_registry": "HOST:PORT",
    "kube_storage_class": "a StorageClass name",
    "kube_shared_access_mode": "one of " + ", ".join(ACCESS_MODES),
}


@dataclass(frozen=True)
class DebianMirrors:
    """Where images get Debian packages from. Not part of any image digest: a mirror is
    where packages come from, not what goes in."""

    #: The archive for the suite and its -updates (``deb.debian.org/debian``).
    archive: str = DEFAULT_DEBIAN_MIRROR
    #: The archive for -security.
    security: str = DEFAULT_DEBIAN_SECURITY


@dataclass(frozen=True)
class KubeSettings:
    """Where and how ``--target kubernetes`` runs the model (docs/configuration.md)."""

    #: The kubeconfig file; None: ``~/.kube/config`` (the CLI resolves it).
    kubeconfig: str | None = None
    #: Its context; None: the file's current context.
    context: str | None = None
    #: The namespace; None: the stack's name (else the model folder's), made a DNS label.
    namespace: str | None = None
    #: The registry the cluster pulls saline's images from (HOST:PORT); None: the
    #: registry images are pushed to (right when the cluster's nodes are this machine).
    registry: str | None = None
    #: The StorageClass of every volume claim; None: the cluster's default class.
    storage_class: str | None = None
    #: Access mode of a volume every replica of a Deployment mounts (glance's store).
    shared_access_mode: str = ACCESS_MODES[0]


@dataclass(frozen=True)
class Settings:
    """Everything saline's commands need to know about where things are."""

    #: The model folder (``classes/``, ``nodes/``); None when nothing named one.
    model: str | None = None
    #: Formula folders; empty means the model's ``formulas/``, else the shipped ones.
    formulas: tuple[str, ...] = ()
    #: The image registry (HOST:PORT) images are pushed to and pulled from.
    registry: str = DEFAULT_REGISTRY
    #: The stack's name (the compose project); None means the model folder's name.
    stack: str | None = None
    #: Where the model's services run: ``compose`` (the local podman stack).
    target: str = "compose"
    #: saline's state on this machine: registry data, stacks, apt cache, debug logs.
    state_dir: str = ""
    #: The model's prepared-file cache; None turns it off.
    cache_dir: str | None = None
    #: Debian mirrors for image builds.
    debian: DebianMirrors = field(default_factory=DebianMirrors)
    #: Print tracebacks of unexpected errors (``SALINE_DEBUG=1``).
    debug: bool = False
    #: Colour on terminals (off with ``NO_COLOR``).
    color: bool = True
    #: The project file that was read, if any.
    project_file: str | None = None
    #: Kubernetes (``--target kubernetes``).
    kube: KubeSettings = field(default_factory=KubeSettings)

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.state_dir, "logs")


def find_project_file(cwd: str) -> str | None:
    """``saline.toml`` in ``cwd`` or the nearest parent folder."""
    here = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(here, PROJECT_FILE)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.split("=", 1)[0].strip() == key:
            return number
    return None


def read_project_file(path: str) -> dict[str, Any]:
    """The project file's settings, checked; relative paths made absolute."""
    shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        data = tomllib.loads(text)
    except OSError as e:
        raise SettingsError(f"cannot read it: {e.strerror}", Location(shown)) from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"not valid TOML: {e}", Location(shown)) from None
    folder = os.path.dirname(os.path.abspath(path))
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = Location(shown, _line_of(text, key), key=key)
        if key not in _PROJECT_KEYS:
            known = ", ".join(_PROJECT_KEYS)
            raise SettingsError(f"unknown setting (known: {known})", where)
        want = _PROJECT_KEYS[key]
        if key == "formulas":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"must be {want}", where)
            out[key] = tuple(os.path.join(folder, v) for v in value)
            continue
        if not isinstance(value, str) or not value:
            raise SettingsError(f"must be {want} (a non-empty string)", where)
        if key == "target" and value not in TARGETS:
            raise SettingsError(f"must be {want}, not {value!r}", where)
        if key == "kube_shared_access_mode" and value not in ACCESS_MODES:
            raise SettingsError(f"must be {want}, not {value!r}", where)
        if key in ("model", "state_dir", "cache_dir", "kubeconfig"):
            value = os.path.join(folder, os.path.expanduser(value))
        out[key] = value
    return out


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str], cwd: str, home: str | None = None
) -> Settings:
    """Settings from flags, then the environment, then ``saline.toml``, then defaults.

    ``flags`` holds the command line's values by setting name (None: not given).
    """
    home = home or environ.get("HOME") or os.path.expanduser("~")
    project_file = find_project_file(cwd)
    project = read_project_file(project_file) if project_file else {}

    def pick(name: str, env: str | None) -> Any:
        if flags.get(name) not in (None, (), []):
            return flags[name]
        if env and environ.get(env):
            return environ[env]
        return project.get(name)

    model = pick("model", "SALINE_MODEL")
    formulas = flags.get("formulas") or ()
    if not formulas and environ.get("SALINE_FORMULAS"):
        formulas = tuple(d for d in environ["SALINE_FORMULAS"].split(":") if d)
    if not formulas:
        formulas = project.get("formulas", ())
    target = pick("target", "SALINE_TARGET") or "compose"
    if target not in TARGETS:
        raise SettingsError(f"target {target!r}: saline knows {', '.join(TARGETS)}")

    state_dir = pick("state_dir", "SALINE_STATE_DIR")
    if not state_dir:
        xdg = environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
        state_dir = os.path.join(xdg, "saline")

    cache_dir: str | None
    if environ.get("SALINE_NO_CACHE"):
        cache_dir = None
    else:
        base = pick("cache_dir", "SALINE_CACHE_DIR")
        if not base:
            xdg = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
            base = os.path.join(xdg, "saline")
        cache_dir = os.path.join(base, "model-files")

    kube = _kube(flags, environ, pick)

    return Settings(
        model=os.path.abspath(model) if model else None,
        formulas=tuple(os.path.abspath(f) for f in formulas),
        registry=pick("registry", "SALINE_REGISTRY") or DEFAULT_REGISTRY,
        stack=pick("stack", "SALINE_STACK") or None,
        target=target,
        state_dir=os.path.abspath(state_dir),
        cache_dir=cache_dir,
        debian=DebianMirrors(
            archive=pick("debian_mirror", "SALINE_DEBIAN_MIRROR") or DEFAULT_DEBIAN_MIRROR,
            security=pick("debian_security_mirror", "SALINE_DEBIAN_SECURITY")
            or DEFAULT_DEBIAN_SECURITY,
        ),
        debug=bool(environ.get("SALINE_DEBUG")),
        color=not environ.get("NO_COLOR"),
        project_file=project_file,
        kube=kube,
    )


def _kube(
    flags: Mapping[str, Any], environ: Mapping[str, str], pick: Callable[[str, str | None], Any]
) -> KubeSettings:
    """The Kubernetes settings: flags (``kubeconfig``, ``kube_context``, ...), then
    ``SALINE_KUBE*`` variables (the kubeconfig also from ``KUBECONFIG``, as kubectl),
    then saline.toml."""
    kubeconfig = pick("kubeconfig", "SALINE_KUBECONFIG")
    if not kubeconfig and environ.get("KUBECONFIG"):
        kubeconfig = environ["KUBECONFIG"]
        if os.pathsep in kubeconfig.strip(os.pathsep):
            raise SettingsError(
                f"KUBECONFIG={kubeconfig}: saline reads one kubeconfig file, not a list: "
                "name it with --kubeconfig FILE or SALINE_KUBECONFIG"
            )
        kubeconfig = kubeconfig.strip(os.pathsep)
    mode = pick("kube_shared_access_mode", "SALINE_KUBE_SHARED_ACCESS_MODE") or ACCESS_MODES[0]
    if mode not in ACCESS_MODES:
        raise SettingsError(f"shared access mode {mode!r}: one of {', '.join(ACCESS_MODES)}")
    return KubeSettings(
        kubeconfig=os.path.abspath(os.path.expanduser(kubeconfig)) if kubeconfig else None,
        context=pick("kube_context", "SALINE_KUBE_CONTEXT") or None,
        namespace=pick("kube_namespace", "SALINE_KUBE_NAMESPACE") or None,
        registry=pick("kube_registry", "SALINE_KUBE_REGISTRY") or None,
        storage_class=pick("kube_storage_class", "SALINE_KUBE_STORAGE_CLASS") or None,
        shared_access_mode=mode,
    )

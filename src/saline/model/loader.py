"""Reading a model folder: find class and node files, parse each once, prepare values.

This module is the only part of the model engine that reads files. Preparing a file turns
its data into the engine's value types (strings with references become
:class:`~saline.model.values.Expr`, ``~key``/``=key`` become flags) once, so that merging
many nodes never re-parses a string. Line numbers are not kept while loading (that would
slow every compile); :func:`locate` finds the line of a key when an error or
``explain`` needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import yaml

from ..errors import (
    ClassNotFoundError,
    DuplicateNodeError,
    Location,
    MalformedExpressionError,
    ModelNotFoundError,
    NodeNotFoundError,
    YamlError,
)
from ..yamlfile import LineFinder
from .cache import FileCache
from .config import ModelConfig
from .values import (
    CONSTANT,
    OVERWRITE,
    Chain,
    Expr,
    FDict,
    Flagged,
    Query,
    needs_parse,
    parse_string,
)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXTENSIONS = (".yml", ".yaml")
_SKIP_DIRS = ("CVS", "SCCS")
AUTOMATIC_SOURCE = "<automatic parameters>"


@dataclass
class Entity:
    """One class or node file, prepared for merging."""

    name: str
    file: str  # relative to the model root
    src: str  # the file, relative to the model root: what values from it carry
    pathname: str  # file path without extension, relative to nodes_uri/classes_uri
    classes: list[str]
    applications: list[str]
    parameters: dict[str, Any]
    exports: dict[str, Any]
    environment: str | None
    #: Some inventory query in this file asks for all environments (+AllEnvs).
    all_envs: bool = False


def _walk(base: str, compose: bool, is_class: bool, kind: str, model_dir: str) -> dict[str, str]:
    """Map entity name -> file path relative to the model root, like reclass's yaml_fs.

    A direct scandir walk: on a 1000-node model, os.walk and os.path helpers per file cost
    more than everything else `saline model show` does.
    """
    found: dict[str, str] = {}
    base_rel = os.path.relpath(base, model_dir)
    stack: list[tuple[str, list[str]]] = [(base, [])]
    while stack:
        directory, parts = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        prefix = "/".join([base_rel, *parts, ""])
        for e in entries:
            fname = e.name
            if e.is_dir():
                if not fname.startswith(".") and fname not in _SKIP_DIRS:
                    subdirs.append((e.path, [*parts, fname]))
                continue
            if fname.endswith(".yml"):
                stem = fname[:-4]
            elif fname.endswith(".yaml"):
                stem = fname[:-5]
            else:
                continue
            if is_class:
                name = ".".join([*parts, stem] if stem != "init" else parts) if parts else stem
            elif compose and parts and not parts[0].startswith("_"):
                name = ".".join([*parts, stem])
            else:
                name = stem
            path = prefix + fname
            if name in found:
                first, second = sorted((found[name], path))
                raise DuplicateNodeError(
                    f"{kind} {name!r} is defined twice: in {first} and in {second}",
                    Location(second),
                )
            found[name] = path
        stack.extend(reversed(subdirs))
    return found


def absolute_class_names(owner: str, names: list[str]) -> list[str]:
    """Resolve relative class names (``.sibling``, ``..uncle``) against the owner's name."""
    out = []
    for n in names:
        if n.startswith("."):
            dots = len(n) - len(n.lstrip("."))
            parent = ".".join(owner.split(".")[:-dots])
            n = n[dots:] if parent == "" else parent + n[dots - 1 :]
        out.append(n)
    return out


class ModelFiles:
    """The files of one model folder, each parsed and prepared at most once."""

    def __init__(self, model_dir: str, config: ModelConfig, cache: FileCache | None = None) -> None:
        if not os.path.isdir(model_dir):
            raise ModelNotFoundError(f"model folder {model_dir!r} does not exist")
        self.root = os.path.abspath(model_dir)
        self.config = config
        nodes_dir = os.path.join(self.root, config.nodes_uri)
        classes_dir = os.path.join(self.root, config.classes_uri)
        for d, what in ((nodes_dir, "nodes"), (classes_dir, "classes")):
            if not os.path.isdir(d):
                raise ModelNotFoundError(
                    f"model folder {model_dir!r} has no {what} folder "
                    f"({os.path.relpath(d, self.root)}/)"
                )
        self.node_files = _walk(nodes_dir, config.compose_node_name, False, "node", self.root)
        self.class_files = _walk(classes_dir, False, True, "class", self.root)
        self.nodes_dir = nodes_dir
        self.classes_dir = classes_dir
        #: Source table: index -> file path relative to the model (0: automatic parameters).
        self.cache = cache
        self.by_src: dict[str, Entity] = {}
        self._classes: dict[str, Entity] = {}
        self._nodes: dict[str, Entity] = {}
        self._lines = LineFinder()

    # -- entities -------------------------------------------------------------

    def node(self, name: str) -> Entity:
        ent = self._nodes.get(name)
        if ent is None:
            path = self.node_files.get(name)
            if path is None:
                raise NodeNotFoundError(f"no node named {name!r} in {self.config.nodes_uri}/")
            ent = self._load(name, path, self.nodes_dir)
            self._nodes[name] = ent
        return ent

    def klass(self, name: str) -> Entity | None:
        """The class ``name``; None if it does not exist (the caller decides if that is fatal)."""
        ent = self._classes.get(name)
        if ent is None:
            path = self.class_files.get(name)
            if path is None:
                return None
            ent = self._load(name, path, self.classes_dir)
            self._classes[name] = ent
        return ent

    def class_not_found(self, name: str, loc: Location) -> ClassNotFoundError:
        guess = name.replace(".", "/")
        return ClassNotFoundError(
            f"class {name!r} not found (looked for {self.config.classes_uri}/{guess}.yml "
            f"and {self.config.classes_uri}/{guess}/init.yml)",
            loc,
        )

    def _load(self, name: str, path: str, base: str) -> Entity:
        abspath = os.path.join(self.root, path)
        if self.cache is not None:
            cached = self.cache.get(abspath, name)
            if isinstance(cached, Entity):
                self.by_src[path] = cached
                return cached
        ent = self._parse(name, path, base, abspath)
        if self.cache is not None:
            self.cache.put(abspath, name, ent)
        return ent

    def _parse(self, name: str, path: str, base: str, abspath: str) -> Entity:
        try:
            with open(abspath, "rb") as fh:
                data = load_yaml(fh)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else None
            what = e.problem or "invalid YAML"
            if e.context:
                what = f"{e.context}: {what}"
            raise YamlError(f"invalid YAML: {what}", Location(path, line)) from e
        except yaml.YAMLError as e:
            raise YamlError(f"invalid YAML: {e}", Location(path)) from e
        except UnicodeDecodeError as e:
            raise YamlError(f"not UTF-8 text: {e}", Location(path)) from e
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise YamlError(
                f"a class or node file must be a mapping (classes, applications, parameters, ...), "
                f"not a {type(data).__name__}",
                Location(path, 1),
            )
        src = path

        def loc(key: str) -> Location:
            return Location(path, self.locate(path, (key,)), key=key)

        classes = data.get("classes") or []
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise YamlError("'classes' must be a list of class names", loc("classes"))
        apps = data.get("applications") or []
        if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
            raise YamlError("'applications' must be a list of names", loc("applications"))
        env = data.get("environment")
        if env is not None and not isinstance(env, str):
            raise YamlError("'environment' must be a string", loc("environment"))
        sections = {}
        flags = _PrepareFlags()
        for key in ("parameters", "exports"):
            raw = data.get(key)
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                raise YamlError(f"'{key}' must be a mapping", loc(key))
            try:
                sections[key] = prepare_dict(raw, src, (key,), flags)
            except MalformedExpressionError as e:
                fpath = getattr(e, "fpath", (key,))
                raise MalformedExpressionError(
                    e.message, Location(path, self.locate(path, fpath), key=":".join(fpath))
                ) from None
        prefix = base + os.sep
        # The file is under ``base`` as written (the common case) unless, say, a
        # ``nodes_uri`` has ``..`` in it; os.path.relpath costs a lot more than slicing.
        rel = abspath[len(prefix) :] if abspath.startswith(prefix) else None
        pathname = os.path.splitext(rel or os.path.relpath(abspath, base))[0]
        ent = Entity(
            name=name,
            file=path,
            src=src,
            pathname=pathname,
            classes=absolute_class_names(name, classes),
            applications=list(apps),
            parameters=sections["parameters"],
            exports=sections["exports"],
            environment=env,
            all_envs=flags.all_envs,
        )
        self.by_src[src] = ent
        return ent

    # -- line numbers on demand ------------------------------------------------

    def locate(self, path: str, keys: tuple[str, ...]) -> int | None:
        """1-based line of the key path ``keys`` (from the top of the file) in ``path``."""
        if path == AUTOMATIC_SOURCE:
            return None
        return self._lines.line(os.path.join(self.root, path), keys)


# ---------------------------------------------------------------------------
# Reading YAML

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def load_yaml(stream: BinaryIO) -> Any:
    """``yaml.load(stream, Loader=_Loader)``: the same data, built faster.

    libyaml parses, but PyYAML builds the data in Python, with generators and bookkeeping
    per value (for recursive documents). Here strings, and mappings and sequences with
    the standard tags and string keys, are built directly from the parsed nodes; every
    other node (numbers, booleans, null, dates, merge keys ``<<``, other keys, explicit
    tags) is built by PyYAML's own constructor, as before. Only one difference: a value
    that occurs twice through an alias is built twice (equal, not the same object), which
    preparing values would do anyway.
    """
    loader = _Loader(stream)
    try:
        node = loader.get_single_node()
        return None if node is None else _build(loader, node)
    finally:
        loader.dispose()


def _build(loader: Any, node: yaml.Node) -> Any:
    t = type(node)
    if t is yaml.ScalarNode:
        if node.tag == _STR_TAG:
            return node.value
    elif t is yaml.MappingNode:
        if node.tag == _MAP_TAG:
            out: dict[str, Any] = {}
            for k, v in node.value:
                if type(k) is not yaml.ScalarNode or k.tag != _STR_TAG:
                    break  # a merge key or a key of another type: PyYAML's rules
                out[k.value] = _build(loader, v)
            else:
                return out
    elif t is yaml.SequenceNode and node.tag == _SEQ_TAG:
        return [_build(loader, x) for x in node.value]
    return loader.construct_object(node, deep=True)


# ---------------------------------------------------------------------------
# Preparing values


class _Malformed(MalformedExpressionError):
    def __init__(self, message: str, fpath: tuple[str, ...]) -> None:
        super().__init__(message)
        self.fpath = fpath


class _PrepareFlags:
    """Facts about a file gathered while preparing it."""

    def __init__(self) -> None:
        self.all_envs = False


def prepare_value(
    value: Any, src: str, fpath: tuple[str, ...], in_list: bool, flags: _PrepareFlags
) -> tuple[Any, bool]:
    """Prepare one value; returns it and whether a ``~``/``=`` flag occurs inside it."""
    if isinstance(value, str):
        if needs_parse(value):
            try:
                parts = parse_string(value)
            except MalformedExpressionError as e:
                raise _Malformed(e.message, fpath) from None
            if len(parts) == 1 and isinstance(parts[0], str):
                return parts[0], False  # only escapes: a plain string after all
            if any(isinstance(p, Query) and p.all_envs for p in parts):
                flags.all_envs = True
            return Expr(parts, value, src, fpath), False
        return value, False
    if isinstance(value, dict):
        if in_list:
            # Dicts inside lists are not merged, so reclass keeps their keys as written.
            return {
                k: prepare_value(v, src, (*fpath, str(k)), True, flags)[0] for k, v in value.items()
            }, False
        d = prepare_dict(value, src, fpath, flags)
        return d, isinstance(d, FDict)
    if isinstance(value, list):
        return [
            prepare_value(v, src, (*fpath, str(i)), True, flags)[0] for i, v in enumerate(value)
        ], False
    return value, False


def prepare_dict(
    raw: dict[Any, Any], src: str, fpath: tuple[str, ...], flags: _PrepareFlags
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    flagged = False
    for key, value in raw.items():
        k = str(key)
        bits = 0
        if k[:1] == "~":
            bits, k = OVERWRITE, k[1:]
        elif k[:1] == "=":
            bits, k = CONSTANT, k[1:]
        v, inner = prepare_value(value, src, (*fpath, k), False, flags)
        if bits:
            out[k] = Flagged(v, bits)
            flagged = True
        else:
            out[k] = v
            flagged = flagged or inner
    if not flagged:
        return out
    fd = FDict(out)
    fd.fresh = {k: fresh(v) for k, v in out.items()}
    return fd


def fresh(value: Any) -> Any:
    """``value`` as merged into nothing: see :class:`~saline.model.values.FDict`."""
    if isinstance(value, Flagged):
        inner = fresh(value.value)
        if value.flags & CONSTANT:
            return Chain(((value.value, value.flags),))
        return inner
    if isinstance(value, FDict):
        return value.fresh
    return value

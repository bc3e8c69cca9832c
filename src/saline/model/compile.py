"""Compiling nodes: class expansion, merge, resolution, inventory queries.

Semantics follow kapicorp-reclass (see docs/model.md for the few deliberate
differences). Speed comes from sharing, not from cleverness per value:

* each file is read and prepared once (:mod:`.loader`);
* nodes with the same class list share one class expansion: the merged classes are
  computed once, and the per-node ``_reclass_`` parameters are put in afterwards
  (unless a class name contains a reference or a class touches ``_reclass_``, in which
  case that node is expanded on its own);
* merging shares every unchanged subtree, and resolution rebuilds only subtrees that
  contain references (:mod:`.resolve`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    ClassCycleError,
    ConfigError,
    Location,
    MalformedExpressionError,
    MissingReferencesError,
    ModelError,
    QueryError,
)
from .cache import FileCache
from .config import ModelConfig, load_config
from .contributions import contributions
from .loader import AUTOMATIC_SOURCE, Entity, ModelFiles
from .merge import ClassMerge, merge
from .resolve import CleanCache, Missing, Path, Resolver
from .values import Expr, Query, needs_parse, parse_string

_AUTOMATIC_KEY = "_reclass_"


@dataclass
class MergedNode:
    """A node after class expansion and merging, before references are resolved."""

    name: str
    entity: Entity
    environment: str
    classes: list[str]
    applications: list[str]
    parameters: dict[str, Any]
    exports: dict[str, Any]
    #: Files in merge order (AUTOMATIC_SOURCE: the automatic parameters).
    sources: list[str]
    automatic: dict[str, Any]
    all_envs: bool


@dataclass
class CompiledNode:
    """A node with every value resolved: what `saline model show` prints."""

    name: str
    file: str
    uri: str
    environment: str
    classes: list[str]
    applications: list[str]
    parameters: dict[str, Any]
    exports: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The shape of ``reclass --nodeinfo`` (without its timestamp: output is deterministic)."""
        return {
            "__reclass__": {
                "node": self.name,
                "name": self.name,
                "uri": self.uri,
                "environment": self.environment,
            },
            "applications": self.applications,
            "classes": self.classes,
            "environment": self.environment,
            "exports": self.exports,
            "parameters": self.parameters,
        }


@dataclass
class _State:
    """What class expansion has accumulated so far for one node."""

    classes: list[str] = field(default_factory=list)
    applications: list[str] = field(default_factory=list)
    parameters: Any = None
    exports: Any = None
    sources: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    all_envs: bool = False
    #: Expanding once for many nodes: stop at the first class name with a reference.
    trial: bool = False


class _NotShareable(Exception):
    pass


class Model:
    """A loaded model. Compiles nodes on demand and caches what it computed.

    Not thread-safe. Every method is pure with respect to the outside world except that
    files are read (once each) the first time they are needed.
    """

    def __init__(
        self, root: str, config: ModelConfig | None = None, cache: FileCache | None = None
    ) -> None:
        self.config = config or load_config(root)
        self.files = ModelFiles(root, self.config, cache)
        self._ignore_missing = (
            re.compile("|".join(self.config.ignore_class_notfound_regexp))
            if self.config.ignore_class_notfound
            else None
        )
        self._mappings = [self._parse_mapping(m) for m in self.config.class_mappings]
        self._shared: dict[tuple[tuple[str, ...], tuple[str, ...]], _State | None] = {}
        self._merged: dict[str, MergedNode] = {}
        self._param_resolvers: dict[str, Resolver] = {}
        self._export_resolvers: dict[str, Resolver] = {}
        self._compiled: dict[str, CompiledNode] = {}
        self._clean = CleanCache()
        self._class_merge = ClassMerge()
        self._closures: dict[str, list[Entity] | None] = {}
        self._querying: set[str] = set()

    # -- public API ------------------------------------------------------------------

    @property
    def root(self) -> str:
        return self.files.root

    def node_names(self) -> list[str]:
        return sorted(self.files.node_files)

    def node(self, name: str) -> CompiledNode:
        """Compile one node (and, if it has inventory queries, the exports of the others)."""
        done = self._compiled.get(name)
        if done is not None:
            return done
        try:
            compiled = self._compile(name)
        except RecursionError:
            raise _too_deep(name) from None
        # Its resolver's memo is about a third of the compiled model's memory; what needs
        # it later (explain, other nodes' queries) builds it again, or holds its own.
        self._param_resolvers.pop(name, None)
        return compiled

    def _compile(self, name: str) -> CompiledNode:
        merged = self.merged(name)
        params_r = self.params_resolver(name)
        params = params_r.resolve_all()
        exports_r = Resolver(
            name, merged.exports, "exports", self.config, self._clean, self, refs=params_r
        )
        exports = exports_r.resolve_all()
        errors = params_r.errors + exports_r.errors
        if errors:
            raise MissingReferencesError(name, errors)
        node_file = merged.entity.file
        compiled = CompiledNode(
            name=name,
            file=node_file,
            uri="yaml_fs://" + os.path.join(self.root, node_file),
            environment=merged.environment,
            classes=merged.classes,
            applications=merged.applications,
            parameters=params,
            exports=exports,
        )
        self._compiled[name] = compiled
        return compiled

    def inventory(self) -> dict[str, Any]:
        """Every node, in the shape of ``reclass --inventory``: nodes, classes, applications."""
        nodes: dict[str, Any] = {}
        classes: dict[str, list[str]] = {}
        applications: dict[str, list[str]] = {}
        for name in self.node_names():
            n = self.node(name)
            nodes[name] = n.as_dict()
            for c in n.classes:
                classes.setdefault(c, []).append(name)
            for a in n.applications:
                applications.setdefault(a, []).append(name)
        # Every node is compiled: no query runs again. The exports' resolvers refer to the
        # model (a reference cycle): dropped, the model is freed as soon as it is unused.
        self._export_resolvers.clear()
        return {"applications": applications, "classes": classes, "nodes": nodes}

    # -- merging -----------------------------------------------------------------------

    def merged(self, name: str) -> MergedNode:
        m = self._merged.get(name)
        if m is not None:
            return m
        try:
            return self._merge(name)
        except RecursionError:
            raise _too_deep(name) from None

    def _merge(self, name: str) -> MergedNode:
        ent = self.files.node(name)
        env = ent.environment or self.config.default_environment
        auto = self._automatic(name, env)
        mapping_classes = self._mapped_classes(name, ent)
        key = (tuple(mapping_classes), tuple(ent.classes))
        shared = self._shared.get(key, _UNSET_STATE)
        if shared is _UNSET_STATE:
            # Expand with a placeholder for _reclass_; share the result if nothing depended on it.
            placeholder = {_AUTOMATIC_KEY: _PLACEHOLDER} if auto else {}
            try:
                trial: _State | None = self._expand_classes(
                    ent, mapping_classes, placeholder, trial=True
                )
            except _NotShareable:
                trial = None
            ok = trial is not None and (
                not self.config.automatic_parameters
                or (
                    type(trial.parameters) is dict
                    and trial.parameters.get(_AUTOMATIC_KEY) is _PLACEHOLDER
                )
            )
            self._shared[key] = trial if ok else None
            shared = self._shared[key]
        if shared is not None:
            state = _State(
                classes=list(shared.classes),
                applications=list(shared.applications),
                parameters=_with_automatic(shared.parameters, auto),
                exports=shared.exports,
                sources=list(shared.sources),
                all_envs=shared.all_envs,
            )
        else:
            state = self._expand_classes(ent, mapping_classes, auto)
        self._merge_entity(state, ent, merge)
        m = MergedNode(
            name=name,
            entity=ent,
            environment=env,
            classes=state.classes,
            applications=state.applications,
            parameters=state.parameters if state.parameters is not None else {},
            exports=state.exports if state.exports is not None else {},
            sources=state.sources,
            automatic=auto,
            all_envs=state.all_envs,
        )
        self._merged[name] = m
        return m

    def _automatic(self, name: str, env: str) -> dict[str, Any]:
        if not self.config.automatic_parameters:
            return {}
        parts = name.split(".")
        return {
            _AUTOMATIC_KEY: {
                "name": {
                    "full": name,
                    "short": parts[-1],
                    "path": os.path.join(*parts),
                    "parts": parts,
                },
                "environment": env,
            }
        }

    def _expand_classes(
        self, node: Entity, mapping_classes: list[str], auto: dict[str, Any], trial: bool = False
    ) -> _State:
        state = _State(trial=trial)
        # reclass merges class mappings' classes, then the automatic parameters, then the
        # node's classes (each class after the classes it includes), then the node itself.
        self._recurse(mapping_classes, node.file, state, node.name)
        state.classes.extend(c for c in mapping_classes if c not in state.classes)
        state.parameters = merge(state.parameters, auto) if auto else state.parameters
        state.sources.append(AUTOMATIC_SOURCE)
        self._recurse(node.classes, node.file, state, node.name)
        return state

    def _recurse(self, names: list[str], owner: str, state: _State, node: str) -> None:
        """Expand ``names`` (each class after the classes it includes) into ``state``.

        Depth first, with an explicit stack: class includes may nest deeper than Python's
        recursion limit.
        """
        # Each frame: the class names to go through, the file that listed them, and the
        # class they belong to (merged once its includes are), with the position reached.
        frames: list[tuple[list[str], str, Entity | None, str]] = [(names, owner, None, "")]
        positions = [0]
        chain: list[str] = []  # the classes being expanded, outermost first
        on_chain: set[str] = set()
        merge_class = self._class_merge.merge
        while frames:
            names, owner, owner_ent, owner_class = frames[-1]
            index = positions[-1]
            if index == len(names):
                frames.pop()
                positions.pop()
                if owner_ent is not None:
                    self._merge_entity(state, owner_ent, merge_class)
                    state.seen.add(owner_class)
                    chain.pop()
                    on_chain.discard(owner_class)
                continue
            positions[-1] = index + 1
            raw = names[index]
            if needs_parse(raw):
                klass = self._render_class_name(raw, state, Location(owner, None, node), node)
            else:
                klass = raw
                if len(frames) == 1 and klass not in state.seen:
                    closure = self._closure(klass)
                    if closure is not None:
                        # What the steps below do for this class, without the steps.
                        seen = state.seen
                        for member in closure:
                            if member.name not in seen:
                                self._merge_entity(state, member, merge_class)
                                seen.add(member.name)
                        continue
            if klass in state.seen:
                continue
            if klass in on_chain:
                cycle = " -> ".join([*chain[chain.index(klass) :], klass])
                line = self.files.locate(owner, ("classes", str(index))) if owner else None
                raise ClassCycleError(
                    f"classes include each other in a loop: {cycle}",
                    Location(owner, line, node, "classes"),
                )
            ent = self.files.klass(klass)
            if ent is None:
                if self._ignore_missing is not None and self._ignore_missing.match(klass):
                    continue
                line = self.files.locate(owner, ("classes", str(index))) if owner else None
                raise self.files.class_not_found(klass, Location(owner, line, node))
            frames.append((ent.classes, ent.file, ent, klass))
            positions.append(0)
            chain.append(klass)
            on_chain.add(klass)

    def _closure(self, klass: str) -> list[Entity] | None:
        """The classes that expanding class ``klass`` merges, in order (each class after
        the classes it includes, each once), when that is the same for every node: no class
        name in it has a reference, none is missing, none includes itself. None otherwise
        (those are expanded step by step, which reports the mistakes).

        For a node, expanding ``klass`` merges these classes but those it has merged
        already: a class already merged was merged after all of its includes, so what it
        includes is skipped with it either way.
        """
        done = self._closures.get(klass, _UNSET_STATE)
        if done is _UNSET_STATE:
            done = self._closures[klass] = self._find_closure(klass)
        return done  # type: ignore[no-any-return]

    def _find_closure(self, klass: str) -> list[Entity] | None:
        top = self.files.klass(klass)
        if top is None:
            return None
        order: list[Entity] = []
        done: set[str] = set()
        on_chain = {klass}
        stack = [(top, 0)]
        while stack:
            ent, index = stack[-1]
            if index == len(ent.classes):
                stack.pop()
                order.append(ent)
                done.add(ent.name)
                on_chain.discard(ent.name)
                continue
            stack[-1] = (ent, index + 1)
            name = ent.classes[index]
            if name in done:
                continue
            if needs_parse(name) or name in on_chain:
                return None
            sub = self.files.klass(name)
            if sub is None:
                return None
            stack.append((sub, 0))
            on_chain.add(name)
        return order

    def _merge_entity(self, state: _State, ent: Entity, merging: Callable[[Any, Any], Any]) -> None:
        """Merge class or node ``ent`` into ``state``, values with ``merging`` (``merge``,
        or for classes ``ClassMerge.merge``)."""
        for c in ent.classes:
            if c not in state.classes:
                state.classes.append(c)
        apps = state.applications
        own: list[str] = []
        negations: list[str] = []
        for a in ent.applications:
            if a.startswith("~"):
                negations.append(a[1:])
                if a[1:] in own:
                    own.remove(a[1:])
            elif a not in own:
                own.append(a)
        for a in negations:
            if a in apps:
                apps.remove(a)
        for a in own:
            if a not in apps:
                apps.append(a)
        if ent.parameters:
            state.parameters = merging(state.parameters, ent.parameters)
        if ent.exports:
            state.exports = merging(state.exports, ent.exports)
        state.sources.append(ent.src)
        if ent.all_envs:
            state.all_envs = True

    def _render_class_name(self, raw: str, state: _State, owner: Location, node: str) -> str:
        try:
            parts = parse_string(raw)
        except MalformedExpressionError as e:
            raise MalformedExpressionError(e.message, owner) from None
        if any(isinstance(p, Query) for p in parts):
            raise MalformedExpressionError(
                f"class name {raw!r}: inventory queries are not supported in class names", owner
            )
        expr = Expr(parts, raw, owner.file or AUTOMATIC_SOURCE, ("classes",))
        r = _ClassNameResolver(
            node, state.parameters or {}, "parameters", self.config, CleanCache(), self
        )
        try:
            value = r.render(expr)
            if state.trial and r.touched_automatic:
                raise _NotShareable  # depends on the node's name: expand per node
        except Missing as m:
            if state.trial:
                raise _NotShareable from None
            raise ModelError(
                f"class name {raw!r}: cannot resolve ${{{m.ref}}} from what the classes "
                f"before it set",
                Location(owner.file, None, node, "classes"),
            ) from None
        return str(value)

    def _mapped_classes(self, name: str, ent: Entity) -> list[str]:
        if not self._mappings:
            return []
        target = ent.pathname if self.config.class_mappings_match_path else name
        out: list[str] = []
        for kind, pattern, klasses in self._mappings:
            if kind == "re":
                m = pattern.search(target)
                if m:
                    for k in klasses:
                        k = m.expand(k)
                        if k not in out:
                            out.append(k)
            elif fnmatch.fnmatchcase(target, pattern):
                for k in klasses:
                    if k not in out:
                        out.append(k)
        return out

    @staticmethod
    def _parse_mapping(text: str) -> tuple[str, Any, list[str]]:
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        regexp = text.startswith("/")
        if regexp:
            lexer.quotes += "/"
            lexer.escapedquotes += "/"
        try:
            tokens = list(lexer)
        except ValueError:
            raise ConfigError(
                f"class mapping {text!r}: missing closing quote (or slash)",
                Location("reclass-config.yml", key="class_mappings"),
            ) from None
        if len(tokens) < 2:
            raise ConfigError(
                f"class mapping {text!r}: expected 'PATTERN class [class...]'",
                Location("reclass-config.yml", key="class_mappings"),
            )
        if regexp:
            try:
                return ("re", re.compile(tokens[0]), tokens[1:])
            except re.error as e:
                raise ConfigError(
                    f"class mapping {text!r}: bad regular expression: {e}",
                    Location("reclass-config.yml", key="class_mappings"),
                ) from None
        return ("glob", tokens[0], tokens[1:])

    # -- resolution --------------------------------------------------------------------

    def params_resolver(self, name: str) -> Resolver:
        r = self._param_resolvers.get(name)
        if r is None:
            merged = self.merged(name)
            r = Resolver(name, merged.parameters, "parameters", self.config, self._clean, self)
            self._param_resolvers[name] = r
        return r

    def _exports_resolver(self, name: str) -> Resolver:
        """Exports of ``name`` as other nodes' queries see them (missing references raise)."""
        r = self._export_resolvers.get(name)
        if r is None:
            merged = self.merged(name)
            r = Resolver(
                name,
                merged.exports,
                "exports",
                self.config,
                self._clean,
                self,
                refs=self.params_resolver(name),
                strict=True,
            )
            self._export_resolvers[name] = r
        return r

    # Site protocol ----------------------------------------------------------------------

    def run_query(self, query: Query, resolver: Resolver) -> Any:
        me = resolver.node
        merged = self.merged(me)
        all_envs = query.all_envs or merged.all_envs
        names = self.node_names()
        if not all_envs:
            # The environment comes from the node file alone: nodes of other environments
            # are never expanded, so their mistakes do not break this node (as in reclass).
            default = self.config.default_environment
            names = [
                n
                for n in names
                if (self.files.node(n).environment or default) == merged.environment
            ]
        if me in self._querying:
            raise QueryError(
                f"inventory query $[{query.text}] needs the exports of node {me}, which are "
                f"being computed for a query already (a query loop)",
                Location(None, None, me),
            )
        self._querying.add(me)
        try:
            return self._evaluate_query(query, resolver, names)
        finally:
            self._querying.discard(me)

    def _evaluate_query(self, q: Query, resolver: Resolver, names: list[str]) -> Any:
        params: dict[int, Any] = {}
        for i, t in enumerate(q.tests):
            if t.right[0] == "self":
                value = resolver.lookup_ref(":".join(t.right[1]))
                if value is None:
                    raise QueryError(
                        f"inventory query $[{q.text}]: self:{':'.join(t.right[1])} is empty",
                        Location(None, None, resolver.node),
                    )
                params[i] = value

        def export(node: str, path: list[str]) -> Any:
            try:
                return self._exports_resolver(node).value_at(tuple(path))
            except Missing as m:
                if m.expr is None:  # the exported key itself does not exist
                    return _ABSENT
                if q.ignore_errors or self.config.inventory_ignore_failed_render:
                    return _ABSENT
                raise QueryError(
                    f"inventory query $[{q.text}]: node {node} exports "
                    f"{':'.join(path)}, which cannot resolve ${{{m.ref}}}",
                    Location(None, None, resolver.node),
                ) from None

        def passes(node: str) -> bool:
            result: bool | None = None
            for i, t in enumerate(q.tests):
                ev = export(node, t.left[1])
                if ev is _ABSENT:
                    ok = False
                else:
                    other = params[i] if i in params else t.right[1]
                    ok = (ev == other) if t.op == "==" else (ev != other)
                if result is None:
                    result = ok
                elif q.logic[i - 1] == "and":
                    result = result and ok
                else:
                    result = result or ok
            return bool(result)

        if q.kind == "list":
            return [n for n in names if passes(n)]
        out: dict[str, Any] = {}
        assert q.value_path is not None
        for n in names:
            if q.kind == "test" and not passes(n):
                continue
            v = export(n, q.value_path)
            if v is not _ABSENT:
                out[n] = v
        return out

    def describe(self, node: str, section: str, path: Path) -> str:
        found = contributions(self, node, section, path)
        if not found:
            return f"at {section}:{':'.join(path)}"
        shown = ", then ".join(f"{c.where()} ({c.summary()})" for c in found[-4:])
        return f"set in {shown}"

    def expr_location(self, node: str, expr: Expr) -> Location:
        file = expr.src
        if file == AUTOMATIC_SOURCE:
            return Location(None, None, node)
        return Location(file, self.files.locate(file, expr.fpath), node)


class _ClassNameResolver(Resolver):
    """Renders a class name; notes whether it used the node-specific ``_reclass_`` values."""

    touched_automatic = False

    def get(self, path: Path) -> Any:
        if path and path[0] == _AUTOMATIC_KEY:
            self.touched_automatic = True
        return super().get(path)


class _Absent:
    pass


_ABSENT: Any = _Absent()
_PLACEHOLDER: dict[str, Any] = {}
_UNSET_STATE: Any = object()


def _too_deep(node: str) -> ModelError:
    # References, class includes and nested references are resolved without recursion;
    # values nested inside each other (dicts in dicts...) are walked recursively, as
    # kapicorp-reclass does (which fails sooner).
    return ModelError(
        "values are nested too deeply to compile (dicts or lists hundreds of levels deep)",
        Location(None, None, node),
    )


def _with_automatic(params: Any, auto: dict[str, Any]) -> Any:
    if not auto:
        return params
    out = dict(params)
    out[_AUTOMATIC_KEY] = auto[_AUTOMATIC_KEY]
    return out


def load_model(path: str, cache: FileCache | None = None) -> Model:
    """Load the model at ``path``, with prepared files kept in ``cache`` (None: no cache).

    Reads no environment: the caller decides the folder and the cache
    (``FileCache.under(cache_dir)``).
    """
    return Model(path, cache=cache)

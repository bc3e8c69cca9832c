"""Resolving one node's merged parameters: references, deferred merges, queries. Pure.

A :class:`Resolver` works on one merged tree (a node's parameters or its exports) and
produces the fully resolved value. It resolves lazily: a reference resolves exactly the
keys it needs, memoised by key path, so each value is computed once per node. Subtrees
without anything to resolve are returned as they are (shared between nodes, never
copied); only the parts that hold references are rebuilt.

Missing references are collected and reported together (one message per node); a
reference loop, a type conflict or a changed constant stops at once.

Chains of references of any length resolve in bounded Python stack depth. Evaluation is
recursive (it is the fast path), but only :data:`STEP` evaluations deep below the entry
point: the evaluation that would go deeper raises :class:`_Deeper` instead, which
unwinds to the entry point (its "driver") leaving the unwound evaluations in
``Resolver.active``, suspended. The driver evaluates the deeper key first, then resumes
the suspended evaluations innermost first, each of which now finds what it needs
memoised. ``active`` keeps the whole chain throughout, so loop detection is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import ConstantChangedError, Location, ReferenceLoopError, TypeMergeError
from .merge import merge
from .values import CONSTANT, OVERWRITE, Chain, Expr, FDict, Query, Ref, split_path

if TYPE_CHECKING:
    from .config import ModelConfig

_UNSET: Any = object()
Path = tuple[str, ...]
T = TypeVar("T")

#: How many evaluations may nest below a driver before the next one is deferred to it.
#: Each costs about five to eight Python frames; an exports resolver's evaluation may
#: enter the parameters resolver's driver, so two such stacks can be on top of the
#: caller's.
STEP = 40
#: A reference loop longer than this is shown abbreviated in its message.
_SHOWN_LOOP = 12


class Missing(Exception):
    """Internal: a reference's target does not exist. Turned into a ModelError by the caller."""

    def __init__(self, ref: str, expr: Expr | None = None) -> None:
        super().__init__(ref)
        self.ref = ref
        self.expr = expr


class _Deeper(BaseException):
    """Internal: evaluating ``path`` would nest too deep; its driver evaluates it first.

    A BaseException so that no ``except Exception`` on the way can swallow it.
    """

    def __init__(self, resolver: Resolver, path: Path, raw: Any) -> None:
        super().__init__()
        self.resolver = resolver
        self.path = path
        self.raw = raw


class CleanCache:
    """What in a container is left to resolve, memoised by object identity.

    For each dict or list: the keys (indexes for a list) of the values in it that hold
    something to resolve, an empty tuple if none do ("clean"). Shared by all nodes of a
    compile: merged class data is shared between nodes, so each shared subtree is inspected
    once. The cache keeps every inspected object alive, so an id is never reused for
    another object while the cache lives.
    """

    def __init__(self) -> None:
        #: id -> (the container, its dirty keys): what :meth:`dirty` returns, for those
        #: inspected already.
        self.known: dict[int, tuple[Any, tuple[Any, ...]]] = {}

    def dirty(self, v: dict[str, Any] | list[Any]) -> tuple[Any, ...]:
        """The keys (or indexes) of the values in container ``v`` with something to resolve."""
        hit = self.known.get(id(v))
        if hit is not None:
            return hit[1]
        return self._inspect(v)

    def _inspect(self, v: dict[str, Any] | list[Any]) -> tuple[Any, ...]:
        """Inspect a container not seen before, depth first with an explicit stack (data
        may nest deeper than Python's recursion limit)."""
        memo = self.known
        # Each frame: a container, its (key, value) pairs still to look at, the keys found
        # dirty so far, and the container's key in the frame below.
        stack: list[tuple[Any, Iterator[tuple[Any, Any]], list[Any], Any]] = [
            (v, _pairs(v), [], None)
        ]
        while True:
            container, pairs, dirty, _ = stack[-1]
            for k, x in pairs:
                t = type(x)
                if t is dict or t is FDict or t is list:
                    hit = memo.get(id(x))
                    if hit is None:
                        stack.append((x, _pairs(x), [], k))
                        break
                    if hit[1]:
                        dirty.append(k)
                elif t is Expr or t is Chain:
                    dirty.append(k)
            else:
                keys = tuple(dirty)
                memo[id(container)] = (container, keys)
                key = stack.pop()[3]
                if not stack:
                    return keys
                if keys:
                    stack[-1][2].append(key)


def _pairs(v: Any) -> Iterator[tuple[Any, Any]]:
    return iter(enumerate(v)) if type(v) is list else iter(v.items())


class Site(Protocol):
    """What a resolver needs from the model around it (implemented by the compiler)."""

    def run_query(self, query: Query, resolver: Resolver) -> Any:
        """Evaluate an inventory query for the node that ``resolver`` resolves."""

    def describe(self, node: str, section: str, path: Path) -> str:
        """Name the files (and lines) that set ``section:path`` of ``node``, for messages."""

    def expr_location(self, node: str, expr: Expr) -> Location:
        """File and line where ``expr`` was written."""


class Resolver:
    """Resolves one tree. ``refs`` is the resolver references point into (itself for
    parameters; the parameters' resolver for exports).

    The methods under "public" are entry points (drivers, see the module's docstring);
    ``get``, ``deep`` and the private ones run only under one of this resolver's drivers.
    """

    def __init__(
        self,
        node: str,
        root: dict[str, Any],
        section: str,
        config: ModelConfig,
        clean: CleanCache,
        site: Site,
        refs: Resolver | None = None,
        strict: bool = False,
    ) -> None:
        self.node = node
        self.root = root
        self.section = section
        self.config = config
        self.cleaner = clean
        self._dirty = clean.known  # read for every container (see deep)
        self.site = site
        #: The resolver references point into when it is not this one. (Not ``self`` when it
        #: is: a resolver must not refer to itself, or only the cycle collector could free
        #: it and its memo; see ``saline.cli.model``.)
        self._refs = refs
        #: ``found`` and the tree of the resolver references point into (read on every
        #: reference).
        self._found = refs.found if refs is not None else {}
        self._refs_root = refs.root if refs is not None else root
        self.strict = strict  # raise Missing instead of collecting it
        self.memo: dict[Path, Any] = {}
        self.deep_memo: dict[Path, Any] = {}
        #: Fully resolved values of key paths: those looked up so far, and the keys of
        #: dicts resolved on the way (``deep``), and plain values read (``_plain``). A lookup
        #: that returned once returns the very same object again (everything it touched is
        #: in ``memo`` or ``deep_memo`` by then, or was clean), so only successes are kept.
        self.found: dict[Path, Any] = self._found if refs is None else {}
        #: Evaluations under way (the raw value of each), ordered: a loop's path, for messages.
        self.active: dict[Path, Any] = {}
        self.errors: list[tuple[Location, str]] = []
        self._error_keys: set[tuple[Path, str]] = set()
        #: The size ``active`` may reach before an evaluation is deferred to the driver
        #: (STEP more than when the running driver last started an evaluation).
        self._limit = STEP
        #: Strict mode: keys whose evaluation raised Missing out of a driver's step, so that
        #: the suspended evaluations above them get the same Missing when they resume.
        self._failed: dict[Path, tuple[str, Expr | None]] = {}

    # -- public (drivers) --------------------------------------------------------

    def resolve_all(self) -> dict[str, Any]:
        out = self._drive(lambda: self.deep((), self.root))
        assert isinstance(out, dict)
        return out

    def render(self, expr: Expr) -> Any:
        """The value of one expression (a class name, say) against this tree."""
        return self._drive(lambda: self._render_expr(expr))

    def value_at(self, path: Path) -> Any:
        """The fully resolved value at ``path``; raises Missing if there is none."""
        return self._drive(lambda: self.deep(path, self.get(path)))

    def lookup_ref(self, text: str) -> Any:
        """Resolve the reference path ``text`` (``a:b:c``) to its full value."""
        return self._drive(lambda: self._lookup_ref(text))

    def lookup_path(self, parts: Path) -> Any:
        hit = self.found.get(parts, _UNSET)
        if hit is not _UNSET:
            return hit
        return self._drive(lambda: self._lookup_path(parts))

    def ref_name(self, ref: Ref, expr: Expr) -> str:
        """The key path a (possibly nested) reference names, e.g. for ``${a:${b}}``."""
        if ref.path is not None:
            return ref.parts[0]  # type: ignore[return-value]
        return self._drive(lambda: self._ref_name(ref, expr))

    def describe(self, path: Path) -> str:
        return self.site.describe(self.node, self.section, path)

    def _drive(self, work: Callable[[], T]) -> T:
        """Run ``work``; evaluations it defers as too deep are done here first (see the
        module's docstring), then it is run again."""
        active = self.active
        start = len(active)
        saved_limit = self._limit
        deferred: tuple[Path, Any] | None = None
        try:
            while True:
                self._limit = len(active) + STEP
                if deferred is not None:
                    path, raw = deferred
                    deferred = None
                elif len(active) > start:
                    # Resume the innermost suspended evaluation: it starts over, and finds
                    # what it needs memoised now.
                    path, raw = active.popitem()
                    self._limit = len(active) + STEP
                else:
                    try:
                        return work()
                    except _Deeper as d:
                        if d.resolver is not self:
                            raise
                        deferred = (d.path, d.raw)
                        continue
                if path in self.memo:
                    continue
                try:
                    self._evaluate(path, raw)
                except _Deeper as d:
                    if d.resolver is not self:
                        raise
                    deferred = (d.path, d.raw)
                except Missing as m:
                    # Strict mode: what runs next (the evaluation suspended above this one,
                    # or ``work``) gets the same Missing where it needs this key.
                    self._failed[path] = (m.ref, m.expr)
        finally:
            while len(active) > start:
                active.popitem()
            self._limit = saved_limit

    @property
    def refs(self) -> Resolver:
        """The resolver references point into: itself for parameters, the parameters'
        resolver for exports."""
        return self if self._refs is None else self._refs

    # -- lookups -----------------------------------------------------------------

    def _lookup(self, path: Path) -> Any:
        # References into another resolver go through its driver; into this one, directly.
        other = self._refs
        return self._lookup_path(path) if other is None else other.lookup_path(path)

    def _lookup_name(self, name: str) -> Any:
        other = self._refs
        return self._lookup_ref(name) if other is None else other.lookup_ref(name)

    def get(self, path: Path) -> Any:
        """The value at ``path`` with itself resolved (its children may not be yet)."""
        node: Any = self.root
        for i, key in enumerate(path):
            t = type(node)
            if t is dict or t is FDict:
                try:
                    node = node[key]
                except KeyError:
                    raise Missing(":".join(path)) from None
            elif t is list:
                try:
                    node = node[int(key)]
                except (ValueError, IndexError):
                    raise Missing(":".join(path)) from None
            else:
                raise Missing(":".join(path))
            tn = type(node)
            if tn is Expr or tn is Chain:
                p = path[: i + 1]
                m = self.memo.get(p, _UNSET)
                node = m if m is not _UNSET else self._evaluate(p, node)
        return node

    def _lookup_ref(self, text: str) -> Any:
        return self._lookup_path(tuple(split_path(text)))

    def _lookup_path(self, parts: Path) -> Any:
        hit = self.found.get(parts, _UNSET)
        if hit is not _UNSET:
            return hit
        parent = self.get(parts[:-1]) if len(parts) > 1 else self.root
        key = parts[-1]
        tp = type(parent)
        if tp is not dict and tp is not FDict:
            # reclass indexes lists on the way to a value, but not with the last key.
            raise Missing(":".join(parts))
        try:
            v = parent[key]
        except KeyError:
            raise Missing(":".join(parts)) from None
        out = self.deep(parts, v)
        self.found[parts] = out
        return out

    # -- resolution ----------------------------------------------------------------

    def deep(self, path: Path, v: Any) -> Any:
        t = type(v)
        if t is Expr or t is Chain:
            m = self.memo.get(path, _UNSET)
            v = m if m is not _UNSET else self._evaluate(path, v)
            t = type(v)
        if t is not dict and t is not list and t is not FDict:
            return v
        hit = self._dirty.get(id(v))
        dirty = hit[1] if hit is not None else self.cleaner.dirty(v)
        if not dirty:
            return v
        done = self.deep_memo.get(path, _UNSET)
        if done is not _UNSET:
            return done
        out: Any
        if t is list:
            out = list(v)
            for i in dirty:
                out[i] = self.deep(path + (str(i),), v[i])  # noqa: RUF005 (see below)
        else:
            # A copy (in the same key order) in which only the values with something to
            # resolve are replaced. Each is what a reference to its key path finds: noted
            # in ``found`` on the way, references to it need no lookup.
            out = dict(v)
            memo = self.memo
            found = self._found
            own = self.found
            for k in dirty:
                x = v[k]
                tx = type(x)
                p = path + (k,)  # noqa: RUF005 (a third of the time of (*path, k))
                if tx is Expr or tx is Chain:
                    r = memo.get(p, _UNSET)
                    if r is _UNSET:
                        # ``self._evaluate(p, x)``, without a call when every reference in
                        # the expression is resolved already (what ``_quick`` does).
                        paths = x.paths if tx is Expr else None
                        if paths is not None:
                            template = x.template
                            if template is None:
                                r = found.get(paths[0], _UNSET)
                            else:
                                try:
                                    r = template.format(*map(found.__getitem__, paths))
                                except KeyError:
                                    r = _UNSET
                        if r is _UNSET:
                            r = self._evaluate(p, x)
                        else:
                            memo[p] = r
                    tr = type(r)
                    if tr is dict or tr is list or tr is FDict:
                        r = self.deep(p, r)
                else:
                    r = self.deep(p, x)
                out[k] = own[p] = r
        self.deep_memo[path] = out
        return out

    def _evaluate(self, path: Path, raw: Any) -> Any:
        active = self.active
        if path in active:
            self._loop(path, raw)
        if self._failed and path in self._failed:
            raise Missing(*self._failed[path])
        if type(raw) is Expr:
            value = self._quick(raw)
            if value is not _UNSET:
                self.memo[path] = value
                return value
        if len(active) >= self._limit:
            raise _Deeper(self, path, raw)
        active[path] = raw
        try:
            value = self._render_expr(raw) if type(raw) is Expr else self._render_chain(raw, path)
        except Missing as m:
            del active[path]
            if self.strict:
                raise
            self._record_missing(m, raw, path)
            value = None
        except _Deeper:
            raise  # stays in `active`, suspended: the driver resumes it
        except BaseException:
            del active[path]
            raise
        else:
            del active[path]
        self.memo[path] = value
        return value

    def _quick(self, expr: Expr) -> Any:
        """The value of ``expr`` if every reference in it is a plain key path whose value
        is in ``found`` or is a plain value (see ``_plain``): what ``_render_expr`` would
        then return, without touching ``active`` (nothing else is evaluated); otherwise
        _UNSET.

        A key whose expression this returns a value for is not under evaluation (one under
        evaluation waits for a reference whose lookup evaluates something), so it needs no
        loop check first.
        """
        paths = expr.paths
        if paths is None:
            return _UNSET
        found = self._found
        template = expr.template
        try:
            if template is None:
                return found[paths[0]]
            return template.format(*map(found.__getitem__, paths))
        except KeyError:
            pass
        values = []
        for path in paths:
            v = found.get(path, _UNSET)
            if v is _UNSET:
                v = self._plain(path)
                if v is _UNSET:
                    return _UNSET
            values.append(v)
        return values[0] if template is None else template.format(*values)

    def _plain(self, path: Path) -> Any:
        """The value at key path ``path`` of the tree references point into if it is a
        scalar reached through dicts alone, neither having anything to resolve: what a
        lookup would return (and so noted in ``found``), found without evaluating anything.
        Otherwise _UNSET."""
        node: Any = self._refs_root
        for key in path:
            t = type(node)
            if t is not dict and t is not FDict:
                return _UNSET
            node = node.get(key, _UNSET)
        t = type(node)
        if node is _UNSET or t is Expr or t is Chain or t is dict or t is list or t is FDict:
            return _UNSET
        self._found[path] = node
        return node

    def _loop(self, path: Path, raw: Any) -> None:
        keys = list(self.active)
        loop = [":".join(p) for p in [*keys[keys.index(path) :], path]]
        if len(loop) > _SHOWN_LOOP:
            half = _SHOWN_LOOP // 2
            hidden = len(loop) - 2 * half
            loop = [*loop[:half], f"... ({hidden} more)", *loop[-half:]]
        shown = " -> ".join(loop)
        raise ReferenceLoopError(f"reference loop: {shown}", self._loc_for(raw, path))

    def _record_missing(self, m: Missing, raw: Any, path: Path) -> None:
        expr = m.expr
        if expr is None and type(raw) is Expr:
            expr = raw
        key = (path, m.ref)
        if key in self._error_keys:
            return
        self._error_keys.add(key)
        loc = self._loc_for(expr if expr is not None else raw, path)
        self.errors.append((loc, f"cannot resolve ${{{m.ref}}}"))

    def _loc_for(self, raw: Any, path: Path) -> Location:
        key = ":".join((self.section, *path))
        if type(raw) is Expr:
            where = self.site.expr_location(self.node, raw)
            return Location(where.file, where.line, self.node, key)
        return Location(None, None, self.node, key)

    def _ref_name(self, ref: Ref, expr: Expr) -> str:
        """The name of a nested reference, innermost references first, with an explicit
        stack: however deep references nest, this uses one Python frame."""
        stack: list[tuple[Ref, list[str]]] = [(ref, [])]
        index = [0]
        while True:
            r, out = stack[-1]
            i = index[-1]
            if i < len(r.parts):
                index[-1] = i + 1
                p = r.parts[i]
                if isinstance(p, str):
                    out.append(p)
                elif p.path is not None:
                    out.append(str(self._render_ref(p, expr)))
                else:
                    stack.append((p, []))
                    index.append(0)
                continue
            stack.pop()
            index.pop()
            name = "".join(out)
            if not stack:
                return name
            stack[-1][1].append(str(self._lookup_named(name, expr)))

    def _render_ref(self, ref: Ref, expr: Expr) -> Any:
        path = ref.path
        if path is not None:
            hit = self._found.get(path, _UNSET)
            if hit is not _UNSET:
                return hit
            try:
                return self._lookup(path)
            except Missing as m:
                if m.expr is None:
                    m.expr = expr
                    m.ref = ":".join(path)
                raise
        return self._lookup_named(self._ref_name(ref, expr), expr)

    def _lookup_named(self, name: str, expr: Expr) -> Any:
        try:
            return self._lookup_name(name)
        except Missing as m:
            if m.expr is None:
                m.expr = expr
                m.ref = name
            raise

    def _render_expr(self, expr: Expr) -> Any:
        parts = expr.parts
        found = self._found
        if len(parts) == 1:
            p = parts[0]
            if type(p) is Ref:
                path = p.path
                if path is not None:
                    v = found.get(path, _UNSET)
                    if v is not _UNSET:
                        return v
                return self._render_ref(p, expr)
            return self._render_part(p, expr)
        out: list[str] = []
        for p in parts:
            if type(p) is str:
                out.append(p)
            elif type(p) is Ref:
                path = p.path
                v = found.get(path, _UNSET) if path is not None else _UNSET
                if v is _UNSET:
                    v = self._render_ref(p, expr)
                out.append(str(v))
            else:
                out.append(str(self._render_part(p, expr)))
        return "".join(out)

    def _render_part(self, p: Any, expr: Expr) -> Any:
        if type(p) is Ref:
            return self._render_ref(p, expr)
        if type(p) is Query:
            return self.site.run_query(p, self.refs)
        return p

    def _render_item(self, item: Any, path: Path) -> Any:
        t = type(item)
        if t is Expr:
            return self._render_expr(item)
        if t is Chain:
            return self._render_chain(item, path)
        return item

    def _render_chain(self, chain: Chain, path: Path) -> Any:
        """Merge a chain's values in order, with reclass's type rules (its ValueList.render)."""
        cfg = self.config
        output: Any = None
        constant = False
        last_missing: Missing | None = None
        n = len(chain.items)
        for i, (item, flags) in enumerate(chain.items):
            try:
                new = self._render_item(item, path)
            except Missing as m:
                if (
                    cfg.ignore_overwritten_missing_references
                    and not isinstance(output, dict | list)
                    and i != n - 1
                ):
                    new = None
                    last_missing = m
                else:
                    raise
            if constant:
                if cfg.strict_constant_parameters:
                    raise ConstantChangedError(
                        f"a constant (set with '=') is changed later; {self.describe(path)}",
                        Location(None, None, self.node, ":".join((self.section, *path))),
                    )
                continue
            if output is None or flags & OVERWRITE:
                output = _fresh(new)
            elif isinstance(output, dict):
                if isinstance(new, dict):
                    output = merge(output, new)
                elif isinstance(new, list):
                    self._type_error("a list", "a dictionary", path)
                elif cfg.allow_scalar_over_dict or (cfg.allow_none_override and new is None):
                    output = new
                else:
                    self._type_error("a scalar", "a dictionary", path)
            elif isinstance(output, list):
                if isinstance(new, list):
                    output = output + new
                elif isinstance(new, dict):
                    self._type_error("a dictionary", "a list", path)
                elif cfg.allow_scalar_over_list or (cfg.allow_none_override and new is None):
                    output = new
                else:
                    self._type_error("a scalar", "a list", path)
            else:
                if isinstance(new, dict):
                    if not cfg.allow_dict_over_scalar:
                        self._type_error("a dictionary", "a scalar", path)
                    output = _fresh(new)
                elif isinstance(new, list):
                    if not cfg.allow_list_over_scalar:
                        self._type_error("a list", "a scalar", path)
                    output = [output, *new]
                else:
                    output = new
            if flags & CONSTANT:
                constant = True
        if isinstance(output, dict | list) and last_missing is not None:
            raise last_missing
        return output

    def _type_error(self, new: str, old: str, path: Path) -> None:
        raise TypeMergeError(
            f"cannot merge {new} over {old}; {self.describe(path)}",
            Location(None, None, self.node, ":".join((self.section, *path))),
        )


def _fresh(v: Any) -> Any:
    return v.fresh if type(v) is FDict else v

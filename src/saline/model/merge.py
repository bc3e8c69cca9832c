"""Deep merge of prepared values, with reclass semantics. Pure.

Values are never mutated: merging returns new dicts and lists where something changed and
shares everything else, so classes merged once serve every node that includes them.

What merges at once: dict into dict (key by key), list onto list (appended), plain scalar
over plain scalar (replaced), anything into nothing. Everything else (a reference or query
on either side, a ``~``/``=`` flag, values of different types) becomes a
:class:`~saline.model.values.Chain` that the resolver merges once references are known,
exactly as reclass's ValueList does; the type rules (null/scalar/list over dict...) are
applied there.
"""

from __future__ import annotations

from typing import Any

from .loader import fresh
from .values import Chain, FDict, Flagged

_PLAIN_SCALARS = (str, int, float, bool, type(None))


def merge(cur: Any, new: Any) -> Any:
    """Merge prepared value ``new`` over merged value ``cur`` (None: nothing there yet)."""
    tn = type(new)
    if tn is dict or tn is FDict:
        if cur is None:
            return new.fresh if tn is FDict else new
        if type(cur) is dict:
            out = dict(cur)
            get = out.get
            for k, v in new.items():
                c = get(k)
                if c is None:
                    # merge(None, v), without the call for the common case.
                    tv = type(v)
                    out[k] = v.fresh if tv is FDict else fresh(v) if tv is Flagged else v
                else:
                    out[k] = merge(c, v)
            return out
        return _chain(cur, new, 0)
    if tn is Flagged:
        if cur is None:
            return fresh(new)
        return _chain(cur, new.value, new.flags)
    if cur is None:
        return new
    if tn is list:
        if type(cur) is list:
            return cur + new
        return _chain(cur, new, 0)
    # Expr is not a str, so a reference on either side never merges at once.
    if isinstance(new, _PLAIN_SCALARS) and isinstance(cur, _PLAIN_SCALARS):
        return new
    return _chain(cur, new, 0)


def _chain(cur: Any, new: Any, flags: int) -> Chain:
    if type(cur) is Chain:
        return Chain((*cur.items, (new, flags)))
    return Chain(((cur, 0), (new, flags)))


class ClassMerge:
    """:func:`merge` for merging classes into a node, with each key's merge remembered.

    Below the top level, what a key holds after some classes are merged is a function of
    the values those classes gave it alone (a dict merges key by key). Many nodes merge the
    same classes in the same order, so a key's merge, ``merge(cur[k], new[k])``, is looked
    up by the identity of both values before it is computed: nodes that include the same
    classes share the same merged values (and the resolver inspects each once). Values are
    never mutated, and the memo keeps both alive, so an identity stands for one value.

    Only for class data: a node's own values are merged once, and remembering them would
    only hold memory.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def merge(self, cur: Any, new: Any) -> Any:
        """``merge(cur, new)`` for a node's top-level parameters or exports ``cur``."""
        tn = type(new)
        if cur is None or type(cur) is not dict or (tn is not dict and tn is not FDict):
            return merge(cur, new)
        out = dict(cur)
        get = out.get
        memo = self._memo
        for k, v in new.items():
            c = get(k)
            tc = type(c)
            if c is None:
                tv = type(v)
                out[k] = v.fresh if tv is FDict else fresh(v) if tv is Flagged else v
            elif tc is dict or tc is list or tc is Chain:
                key = (id(c), id(v))
                hit = memo.get(key)
                if hit is None:
                    merged = merge(c, v)
                    memo[key] = (c, v, merged)
                    out[k] = merged
                else:
                    out[k] = hit[2]
            else:
                out[k] = merge(c, v)
        return out

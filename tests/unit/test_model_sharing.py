"""What the model engine shares between nodes, and what it must free without the collector.

Speed comes from sharing: nodes that include the same classes share their merged values
(``merge.ClassMerge``), each class's include order is worked out once (``Model._closure``),
and references to values with nothing to resolve are read without a lookup. None of it may
change a result: each test here compares with the plain computation or with the reference
engine. Model commands run with Python's cycle collector off (``saline.cli.model``), so
what a compile builds must be freed by reference counting alone.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reference import reference_nodeinfo
from saline.model import Model
from saline.model.loader import load_yaml
from saline.model.merge import ClassMerge, merge
from saline.model.values import Chain
from tools import write_model


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _query_model(root: Path) -> str:
    return write_model(
        root,
        {
            "classes/base.yml": (
                "parameters:\n"
                "  _param:\n    domain: example.net\n"
                "  fqdn: ${_param:host}.${_param:domain}\n"
                "  peers: $[ exports:fqdn ]\n"
                "  port: 80\n"
                "exports:\n  fqdn: ${fqdn}\n"
            ),
            "classes/web.yml": "classes: [base]\nparameters:\n  port: ${_param:port}\n",
            "nodes/a.yml": "classes: [web]\nparameters:\n  _param:\n    host: a\n    port: 81\n",
            "nodes/b.yml": "classes: [web]\nparameters:\n  _param:\n    host: b\n    port: 82\n",
        },
    )


def test_an_inventory_is_freed_without_the_cycle_collector(
    tmp_path: Path, no_collector: None
) -> None:
    model = Model(_query_model(tmp_path))
    inventory = model.inventory()
    assert inventory["nodes"]["a"]["parameters"]["peers"] == {
        "a": "a.example.net",
        "b": "b.example.net",
    }
    freed = weakref.ref(model)
    del model, inventory
    assert freed() is None


def test_a_resolver_is_freed_once_its_node_is_compiled(tmp_path: Path, no_collector: None) -> None:
    root = write_model(
        tmp_path,
        {
            "classes/c.yml": "parameters:\n  a: ${b}\n  b: x\nexports:\n  a: ${a}\n",
            "nodes/n.yml": "classes: [c]\n",
        },
    )
    model = Model(root)
    resolver = weakref.ref(model.params_resolver("n"))
    assert model.node("n").exports == {"a": "x"}
    assert resolver() is None


def test_nodes_with_the_same_classes_share_merged_values(tmp_path: Path) -> None:
    root = write_model(
        tmp_path,
        {
            "classes/a.yml": "parameters:\n  app:\n    x: 1\n    list: [a]\n",
            "classes/b.yml": (
                "classes: [a]\nparameters:\n  app:\n    y: ${_param:y}\n    list: [b]\n"
            ),
            "nodes/n1.yml": "classes: [b]\nparameters:\n  _param:\n    y: one\n",
            "nodes/n2.yml": "classes: [b]\nparameters:\n  _param:\n    y: two\n  extra: 1\n",
        },
    )
    model = Model(root)
    one, two = model.merged("n1").parameters, model.merged("n2").parameters
    assert one["app"] is two["app"]
    assert model.node("n1").parameters["app"] == {"x": 1, "list": ["a", "b"], "y": "one"}
    assert model.node("n2").parameters["app"] == {"x": 1, "list": ["a", "b"], "y": "two"}


@pytest.mark.parametrize(
    ("cur", "new"),
    [
        (None, {"a": 1}),
        ({"a": {"b": 1}}, {"a": {"c": 2}}),
        ({"a": [1]}, {"a": [2], "b": 3}),
        ({"a": 1}, {"a": {"b": 2}}),
        ({"a": {"b": 1}}, {"a": None}),
        ({"a": Chain(((1, 0), (2, 0)))}, {"a": 3}),
        ({"a": "x"}, ["not", "a", "dict"]),
    ],
)
def test_class_merge_is_merge(cur: Any, new: Any) -> None:
    shared = ClassMerge()
    first = shared.merge(cur, new)
    again = shared.merge(cur, new)
    plain = merge(cur, new)
    assert _shape(first) == _shape(plain) == _shape(again)
    if isinstance(first, dict) and isinstance(cur, dict):
        for key, value in first.items():
            if isinstance(value, dict | list) and key in cur and key in new:
                assert again[key] is value  # remembered, not merged again


def _shape(v: Any) -> Any:
    if isinstance(v, Chain):
        return ("chain", [(_shape(x), f) for x, f in v.items])
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return v


def test_class_includes_agree_with_the_reference(tmp_path: Path) -> None:
    # Includes shared between classes (a diamond), included again after they were merged,
    # listed by a node after a class that includes them, through a class name with a
    # reference, and a class missing (ignored): the order classes merge in, and so every
    # value, must be reclass's.
    root = write_model(
        tmp_path,
        {
            "reclass-config.yml": "ignore_class_notfound: true\n",
            "classes/a.yml": "classes: [b, c]\nparameters:\n  who: [a]\n  last: a\n",
            "classes/b.yml": "classes: [d]\nparameters:\n  who: [b]\n  last: b\n",
            "classes/c.yml": "classes: [d, e, gone]\nparameters:\n  who: [c]\n  last: c\n",
            "classes/d.yml": "parameters:\n  who: [d]\n  last: d\n  role: web\n",
            "classes/e.yml": "classes: [b]\nparameters:\n  who: [e]\n  last: e\n",
            "classes/role/web.yml": "classes: [e]\nparameters:\n  who: [web]\n",
            "nodes/n1.yml": "classes: [c, a]\n",
            "nodes/n2.yml": "classes: [e, a, d]\n",
            "nodes/n3.yml": "classes:\n  - d\n  - role.${role}\n  - a\n",
            "nodes/n4.yml": "classes: [a, b, c, d, e]\n",
        },
    )
    ours = {name: Model(root).node(name).as_dict() for name in ("n1", "n2", "n3", "n4")}
    ref = reference_nodeinfo(root)
    for name, got in ours.items():
        want = ref[name]
        assert isinstance(want, dict), f"the reference failed on {name}: {want}"
        assert got["classes"] == want["classes"], name
        params = {k: v for k, v in got["parameters"].items() if k != "_reclass_"}
        assert params == {k: v for k, v in want["parameters"].items() if k != "_reclass_"}


def test_references_to_plain_values_and_to_values_still_to_resolve(tmp_path: Path) -> None:
    # ``early`` refers to values set later in the file: plain ones (read directly), one
    # with a reference (looked up), one under a list (looked up: reclass does not index a
    # list with the last key), and one missing.
    root = write_model(
        tmp_path,
        {
            "classes/c.yml": (
                "parameters:\n"
                "  early:\n"
                "    plain: ${later:plain}-${later:deep:er}\n"
                "    ref: ${later:ref}\n"
                "    dict: ${later:deep}\n"
                "  later:\n"
                "    plain: p\n"
                "    ref: r-${later:plain}\n"
                "    deep:\n      er: 1\n"
                "    list: [x]\n"
            ),
            "nodes/n.yml": "classes: [c]\n",
        },
    )
    params = Model(root).node("n").parameters
    assert params["early"] == {"plain": "p-1", "ref": "r-p", "dict": {"er": 1}}


def test_yaml_is_read_as_pyyaml_reads_it(tmp_path: Path) -> None:
    text = (
        "base: &b {x: 1, y: [1, 2]}\n"
        "merged:\n  <<: *b\n  y: 3\n"
        "again: *b\n"
        "1: an int key\n"
        "null: a null key\n"
        "date: 2001-12-14\n"
        "bin: !!binary aGVsbG8=\n"
        "set: !!set {a, b}\n"
        "str: !!str 123\n"
        "dup: 1\n"
        "dup: 2\n"
        "flags: [yes, off, ~, 0x1F, 1.5e3]\n"
        "? complex\n: key\n"
    )
    path = tmp_path / "f.yml"
    path.write_text(text)
    import yaml

    with path.open("rb") as fh:
        want = yaml.load(fh, Loader=yaml.CSafeLoader)
    with path.open("rb") as fh:
        got = load_yaml(fh)
    assert got == want
    assert list(got) == list(want)

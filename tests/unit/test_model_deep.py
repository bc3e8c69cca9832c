"""Deep models: long reference chains, deep class includes, deeply nested references.

The resolver evaluates recursively but defers an evaluation that would nest more than
``resolve.STEP`` deep to its driver, so none of these may depend on Python's recursion
limit, and loops must still be found and named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from modelgen import random_model
from reference import reference_nodeinfo_deep
from saline.errors import MissingReferencesError, ModelError, ReferenceLoopError, SalineError
from saline.model import Model, resolve
from tools import write_model


def chain_model(root: Path, n: int, last: str = "end", template: str = "${_param:k%d}") -> str:
    """``_param:k0`` refers to ``k1``, ..., ``k{n-1}`` is ``last``; ``out`` refers to k0."""
    lines = ["parameters:", "  _param:"]
    lines += [f"    k{i}: '{template % (i + 1)}'" for i in range(n - 1)]
    lines += [f"    k{n - 1}: '{last}'", "  out: ${_param:k0}", ""]
    return write_model(root, {"classes/c.yml": "\n".join(lines), "nodes/n.yml": "classes: [c]\n"})


def stack_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    return depth


def test_a_chain_of_10000_references_resolves(tmp_path: Path) -> None:
    n = 10_000
    params = Model(chain_model(tmp_path, n)).node("n").parameters
    assert params["out"] == "end"
    assert all(params["_param"][f"k{i}"] == "end" for i in range(n))


def test_a_long_chain_needs_no_deep_python_stack(tmp_path: Path) -> None:
    root = chain_model(tmp_path, 5_000)
    model = Model(root)
    model.merged("n")  # files read outside the tight limit
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(stack_depth() + 400)  # the chain is 5,000 long: no recursion
    try:
        params = model.node("n").parameters
    finally:
        sys.setrecursionlimit(old)
    assert params["out"] == "end"


def test_a_chain_evaluated_from_its_far_end_first(tmp_path: Path) -> None:
    # Keys iterated from the end of the chain: each resolves in one step.
    n = 3_000
    lines = ["parameters:", "  _param:"]
    lines += [f"    k{i}: ${{_param:k{i - 1}}}" for i in range(n - 1, 0, -1)]
    lines += ["    k0: start", ""]
    root = write_model(
        tmp_path, {"classes/c.yml": "\n".join(lines), "nodes/n.yml": "classes: [c]\n"}
    )
    params = Model(root).node("n").parameters
    assert {params["_param"][f"k{i}"] for i in range(n)} == {"start"}


def test_a_long_interpolation_chain(tmp_path: Path) -> None:
    # Each link adds text: k0 is "x" * 9,999 + "end".
    n = 10_000
    root = chain_model(tmp_path, n, template="x${_param:k%d}")
    params = Model(root).node("n").parameters
    assert params["out"] == "x" * (n - 1) + "end"
    assert params["_param"][f"k{n - 2}"] == "xend"


def test_a_chain_of_dicts_builds_deep_data(tmp_path: Path) -> None:
    # k{i} is a dict that holds a reference to k{i+1}: references build nested data.
    n = 400  # kept printable: json and yaml recurse over the result
    lines = ["parameters:", "  _param:"]
    lines += [f"    k{i}: {{v: {i}, next: '${{_param:k{i + 1}}}'}}" for i in range(n - 1)]
    lines += [f"    k{n - 1}: {{v: {n - 1}}}", ""]
    root = write_model(
        tmp_path, {"classes/c.yml": "\n".join(lines), "nodes/n.yml": "classes: [c]\n"}
    )
    old = resolve.STEP
    resolve.STEP = 3  # the same shape, much deferred
    try:
        deferred = Model(root).node("n").parameters["_param"]["k0"]
    finally:
        resolve.STEP = old
    value = Model(root).node("n").parameters["_param"]["k0"]
    assert value == deferred
    for i in range(n - 1):
        assert value["v"] == i
        value = value["next"]
    assert value == {"v": n - 1}


def test_a_long_loop_is_a_reference_loop(tmp_path: Path) -> None:
    n = 10_000
    root = chain_model(tmp_path, n, last="${_param:k0}")
    with pytest.raises(ReferenceLoopError) as info:
        Model(root).node("n")
    message = str(info.value)
    assert "classes/c.yml:3" in message
    assert "reference loop: _param:k0 -> _param:k1 -> " in message
    assert f"-> _param:k{n - 1} -> _param:k0" in message
    assert "more)" in message and len(message) < 1_000  # abbreviated, not 10,000 keys


def test_a_short_loop_is_shown_whole(tmp_path: Path) -> None:
    root = chain_model(tmp_path, 5, last="${_param:k2}")
    with pytest.raises(
        ReferenceLoopError, match=r"_param:k2 -> _param:k3 -> _param:k4 -> _param:k2"
    ):
        Model(root).node("n")


def test_a_missing_reference_at_the_end_of_a_long_chain(tmp_path: Path) -> None:
    root = chain_model(tmp_path, 5_000, last="${_param:nope}")
    with pytest.raises(MissingReferencesError) as info:
        Model(root).node("n")
    assert "cannot resolve ${_param:nope}" in str(info.value)


def test_a_long_chain_agrees_with_the_reference(tmp_path: Path) -> None:
    root = chain_model(tmp_path, 1_000, template="a${_param:k%d}")
    ours = Model(root).node("n").as_dict()
    ref = reference_nodeinfo_deep(root)["n"]
    assert not isinstance(ref, str), f"reference failed: {ref}"
    assert json.loads(json.dumps(ref["parameters"])) == ours["parameters"]


def test_a_long_loop_fails_in_the_reference_too(tmp_path: Path) -> None:
    root = chain_model(tmp_path, 1_000, last="${_param:k0}")
    with pytest.raises(ReferenceLoopError):
        Model(root).node("n")
    assert reference_nodeinfo_deep(root)["n"] == "InfiniteRecursionError"


def test_a_chain_across_classes_that_include_each_other(tmp_path: Path) -> None:
    # Class c{i} includes c{i+1} and sets k{i} from k{i+1}: deep includes and references.
    n = 2_000
    files = {
        f"classes/c{i}.yml": f"classes: [c{i + 1}]\nparameters: {{k{i}: '${{k{i + 1}}}-{i}'}}\n"
        for i in range(n - 1)
    }
    files[f"classes/c{n - 1}.yml"] = f"parameters: {{k{n - 1}: end, out: '${{k0}}'}}\n"
    files["nodes/n.yml"] = "classes: [c0]\n"
    node = Model(write_model(tmp_path, files)).node("n")
    assert node.classes == [f"c{i}" for i in range(n - 1, -1, -1)]
    assert node.parameters["out"] == "end" + "".join(f"-{i}" for i in range(n - 2, -1, -1))


def test_a_long_class_include_loop(tmp_path: Path) -> None:
    n = 2_000
    files = {f"classes/c{i}.yml": f"classes: [c{(i + 1) % n}]\n" for i in range(n)}
    files["nodes/n.yml"] = "classes: [c0]\n"
    with pytest.raises(SalineError, match=r"loop: c0 -> c1 -> .* -> c1999 -> c0"):
        Model(write_model(tmp_path, files)).node("n")


def test_deeply_nested_references(tmp_path: Path) -> None:
    # ${_param:${_param:...${_param:x}...}}: each level names the key "x", whose value is "x".
    depth = 3_000
    text = "${_param:" * depth + "x" + "}" * depth
    root = write_model(
        tmp_path,
        {
            "classes/c.yml": f"parameters:\n  _param: {{x: x}}\n  out: '{text}'\n",
            "nodes/n.yml": "classes: [c]\n",
        },
    )
    assert Model(root).node("n").parameters["out"] == "x"


def test_a_query_over_a_long_chain_in_exports(tmp_path: Path) -> None:
    n = 3_000
    lines = ["parameters:", "  _param:"]
    lines += [f"    k{i}: ${{_param:k{i + 1}}}" for i in range(n - 1)]
    lines += [f"    k{n - 1}: end", "exports:", "  e: ${_param:k0}", ""]
    root = write_model(
        tmp_path,
        {
            "classes/c.yml": "\n".join(lines),
            "classes/q.yml": "parameters:\n  seen: $[exports:e]\n",
            "nodes/a.yml": "classes: [c]\n",
            "nodes/b.yml": "classes: [q]\n",
        },
    )
    model = Model(root)
    assert model.node("b").parameters["seen"] == {"a": "end"}
    assert model.node("a").exports == {"e": "end"}


@pytest.mark.parametrize("seed", range(25))
def test_deferring_every_evaluation_changes_nothing(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deferral machinery on random models (with mistakes): with STEP = 1 nearly every
    evaluation is deferred and resumed, and the results and errors must be the same."""
    root = str(tmp_path / "m")
    random_model(seed, root)

    def compile_all() -> dict[str, Any]:
        model = Model(root)
        out: dict[str, Any] = {}
        for name in model.node_names():
            try:
                out[name] = model.node(name).as_dict()
            except SalineError as e:
                out[name] = f"{type(e).__name__}: {e}"
        return out

    normal = compile_all()
    monkeypatch.setattr(resolve, "STEP", 1)
    assert compile_all() == normal


def nested_model(root: Path, depth: int) -> str:
    """``d`` nested ``depth`` dicts deep in a class and in the node (merged), with a
    reference at the bottom."""

    def nest(leaf: str) -> str:
        return "{a: " * depth + "{b: " + leaf + "}" + "}" * depth

    return write_model(
        root,
        {
            "classes/c.yml": f"parameters:\n  x: 1\n  d: {nest(repr('${x}'))}\n",
            "nodes/n.yml": f"classes: [c]\nparameters:\n  d: {nest('2')}\n  e: {nest('3')}\n",
        },
    )


def test_values_nested_hundreds_deep(tmp_path: Path) -> None:
    depth = 300  # kapicorp-reclass fails at 400
    value = Model(nested_model(tmp_path, depth)).node("n").parameters["d"]
    for _ in range(depth):
        value = value["a"]
    assert value == {"b": 2}


def test_values_nested_too_deep_are_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="node n: values are nested too deeply"):
        Model(nested_model(tmp_path, 3_000)).node("n")


def test_a_loop_next_to_values_already_looked_up(tmp_path: Path) -> None:
    # ``b`` and ``c`` are looked up (and kept) before the loop d -> e -> d is met.
    root = write_model(
        tmp_path,
        {
            "classes/c.yml": (
                "parameters:\n  a: x\n  b: ${a}-${a}\n  c: ${b}\n  d: ${e}\n  e: ${c}${d}\n"
            ),
            "nodes/n.yml": "classes: [c]\n",
        },
    )
    with pytest.raises(ReferenceLoopError, match=r"reference loop: d -> e -> d"):
        Model(root).node("n")


def test_values_referenced_many_times_agree_with_the_reference(tmp_path: Path) -> None:
    lines = ["parameters:", "  _param:", "    host: h", "    port: 80"]
    lines += ["    url: http://${_param:host}:${_param:port}", "    d: {x: '${_param:host}'}"]
    for i in range(50):
        lines += [f"  v{i}: ${{_param:url}}/{i}", f"  w{i}: ${{_param:d}}", f"  u{i}: ${{v{i}}}"]
    root = write_model(
        tmp_path, {"classes/c.yml": "\n".join(lines) + "\n", "nodes/n.yml": "classes: [c]\n"}
    )
    ours = Model(root).node("n").as_dict()
    ref = reference_nodeinfo_deep(root)["n"]
    assert not isinstance(ref, str), f"reference failed: {ref}"
    assert json.loads(json.dumps(ref["parameters"])) == ours["parameters"]
    assert ours["parameters"]["u7"] == "http://h:80/7"
    assert ours["parameters"]["w3"] == {"x": "h"}

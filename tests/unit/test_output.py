"""saline.output: the same text as Python's json and PyYAML's safe dump, made faster.

The references are what the CLI printed before: ``json.dumps(data, indent=2,
ensure_ascii=False, default=str)`` and PyYAML's CSafeDumper (block style, insertion order,
no aliases, unicode kept); output.py documents the few deliberate JSON differences.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import io
import json
import math
import os
import sys
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from saline import output
from saline.model import load_model

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "bench"))


def old_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def old_yaml(data: Any) -> str:
    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class NoAliasDumper(base):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    out: str = yaml.dump(
        data, Dumper=NoAliasDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    return out


def written(data: Any, fmt: str, binary: bool = True) -> str:
    """What write() puts on a stream: a UTF-8 text stream over bytes (like stdout), or a
    StringIO (no bytes underneath)."""
    if binary:
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="utf-8")
        stream.write("before\n")  # text written earlier stays first
        output.write(data, fmt, stream)
        stream.flush()
        text = raw.getvalue().decode()
        assert text.startswith("before\n")
        return text[len("before\n") :]
    sio = io.StringIO()
    output.write(data, fmt, sio)
    return sio.getvalue()


def check_same(data: Any) -> None:
    """Byte-identical to the old output, through dump() and through write()."""
    j = old_json(data)
    assert output.dump(data, "json") == j
    assert written(data, "json") == j + "\n"
    assert written(data, "json", binary=False) == j + "\n"
    y = old_yaml(data)
    assert output.dump(data, "yaml") == y
    assert written(data, "yaml") == y
    assert written(data, "yaml", binary=False) == y


def check_same_yaml(data: Any) -> None:
    y = old_yaml(data)
    assert output.dump(data, "yaml") == y
    assert written(data, "yaml") == y


# -- real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_inventory() -> dict[str, Any]:
    return load_model(os.path.join(ROOT, "examples", "openstack")).inventory()


@pytest.fixture(scope="module")
def generated_inventories(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from genmodel import generate
    from genmodel_deep import generate as generate_deep

    out = []
    for name, gen in (("wide", generate), ("deep", generate_deep)):
        root = str(tmp_path_factory.mktemp(name))
        gen(25, root)
        out.append(load_model(root).inventory())
    return out


def test_example_inventory_same_as_before(example_inventory: dict[str, Any]) -> None:
    check_same(example_inventory)
    assert json.loads(output.dump(example_inventory, "json")) == example_inventory
    node = next(iter(example_inventory["nodes"].values()))
    check_same(node)


def test_generated_inventories_same_as_before(
    generated_inventories: list[dict[str, Any]],
) -> None:
    for inv in generated_inventories:
        check_same(inv)
        assert json.loads(output.dump(inv, "json")) == json.loads(old_json(inv))
        assert yaml.safe_load(output.dump(inv, "yaml")) == inv


def test_deterministic(example_inventory: dict[str, Any]) -> None:
    for fmt in output.FORMATS:
        assert output.dump(example_inventory, fmt) == output.dump(example_inventory, fmt)
    # Keys keep their insertion order.
    data = {"b": 1, "a": {"z": 1, "y": 2}}
    assert list(json.loads(output.dump(data, "json"))["a"]) == ["z", "y"]
    assert output.dump(data, "yaml") == "b: 1\na:\n  z: 1\n  y: 2\n"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown output format"):
        output.dump({}, "toml")
    with pytest.raises(ValueError, match="unknown output format"):
        output.write({}, "toml", io.StringIO())


# -- JSON: what orjson refuses or prints its own way ------------------------------------------


@pytest.mark.parametrize(
    "big", [2**64, -(2**63) - 1, 10**30, -(10**40)], ids=["2^64", "-2^63-1", "1e30", "-1e40"]
)
def test_json_integers_beyond_64_bits(big: int) -> None:
    # orjson refuses them: Python's json prints them, at any depth (write() splits the top).
    for data in (big, [big], {"a": {"b": {"c": big}}}, {"a": {"b": {"c": {"d": [1, big]}}}}):
        check_same(data)
    assert json.loads(output.dump({"x": big}, "json")) == {"x": big}


def test_json_non_string_keys() -> None:
    data = {1: "int", None: "none", 1.5: "float", "s": {2: {False: [0], True: 1}}}
    check_same(data)
    assert output.dump({"1": 1, 1: 2}, "json") == old_json({"1": 1, 1: 2})  # both kept


def test_json_odd_values() -> None:
    class Obj:
        def __str__(self) -> str:
            return "an object"

    @dataclasses.dataclass
    class Point:
        x: int

    class F(float):
        pass

    class Colour(enum.StrEnum):
        RED = "red"

    Pair = collections.namedtuple("Pair", "a b")
    data = {
        "obj": Obj(),
        "date": datetime.date(2024, 1, 2),
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "time": datetime.time(1, 2),
        "decimal": decimal.Decimal("1.10"),
        "bytes": b"raw",
        "set": {1},
        "tuple": (1, "a"),
        "named": Pair(1, 2),
        "dataclass": Point(3),
        "float_subclass": F(2.5),
        "str_enum": Colour.RED,
        "ordered": collections.OrderedDict(a=1),
    }
    assert output.dump(data, "json") == old_json(data)
    assert written(data, "json") == old_json(data) + "\n"


def test_json_unicode_and_escapes() -> None:
    controls = "".join(chr(i) for i in range(0x20)) + "\x7f\x80\x9f"
    data = {
        "é中😀": "ünïcødé 中文 😀",
        "controls": controls,
        "quotes": 'a"b\\c/d',
        "separators": "\u2028\u2029\ufeff",
        controls: "key with controls",
    }
    check_same(data)
    assert "中文" in output.dump(data, "json")  # not \u-escaped


def test_json_lone_surrogates_as_before() -> None:
    data = {"a": "\ud800"}
    assert output.dump(data, "json") == old_json(data)  # through Python's json
    sio = io.StringIO()
    output.write(data, "json", sio)
    assert sio.getvalue() == old_json(data) + "\n"
    # A UTF-8 stream refuses them, as print() did.
    with pytest.raises(UnicodeEncodeError):
        written(data, "json")


def test_json_floats() -> None:
    # Same text for usual floats; below 1e-4 orjson's shortest form, the same numbers.
    usual = [0.0, -0.0, 1.0, 0.1, 1.5, -2.25, 1e16, 1.5e300, 12345.678, 1e-4]
    check_same(usual)
    small = [1e-7, 5e-05, 2.5e-10]
    assert json.loads(output.dump(small, "json")) == small
    assert output.dump(small, "json") == "[\n  1e-7,\n  0.00005,\n  2.5e-10\n]"
    # NaN and infinities are not JSON: null (Python's json printed NaN, Infinity).
    assert json.loads(output.dump([math.nan, math.inf, -math.inf], "json")) == [None] * 3


def test_json_date_keys() -> None:
    # Python's json raised TypeError on them; a model can have them (YAML timestamps).
    data = {datetime.date(2024, 1, 2): 1}
    assert json.loads(output.dump(data, "json")) == {"2024-01-02": 1}
    assert written(data, "json") == output.dump(data, "json") + "\n"


def test_json_errors_as_before() -> None:
    cycle: dict[str, Any] = {}
    cycle["a"] = {"b": cycle}
    with pytest.raises(ValueError, match="Circular"):
        output.dump(cycle, "json")
    with pytest.raises(ValueError, match="Circular"):
        written(cycle, "json")
    deep: Any = 1
    for _ in range(300):  # deeper than orjson goes
        deep = [deep]
    check_same(deep)
    with pytest.raises(TypeError, match="keys must be"):
        output.dump({(1, 2): 3}, "json")


def test_json_non_utf8_stream() -> None:
    data = {"a": "é", "b": [1, 2]}
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")
    output.write(data, "json", stream)
    stream.flush()
    assert raw.getvalue() == (old_json(data) + "\n").encode("latin-1")


# -- YAML -------------------------------------------------------------------------------------


def test_yaml_layout() -> None:
    data = {
        "empty_dict": {},
        "empty_list": [],
        "list": [1, [2, [3, {}]], {"a": [], "b": {"c": None}}, [], True, 1.5],
        "nested": {"x": {"y": [{"z": 1, "w": [{"v": "u"}]}]}},
        "tuple": (1, 2),
        1: "int key",
        None: "none key",
        False: "bool key",
        2.5: "float key",
        "": "empty key",
    }
    check_same(data)
    check_same([data, [data]])


def test_yaml_scalars_quoted_as_pyyaml_does() -> None:
    words = ["yes", "no", "on", "off", "y", "n", "null", "~", "true", "True", "", " ", "1", "1.5"]
    words += ["0x1f", "0o17", "017", "1_000", "1:20", "2024-01-01", "2024-01-01 10:00:00"]
    words += ["<<", "=", ".inf", "-.inf", ".nan", "-", "--", "---", "...", "a:", "a: b", "a #b"]
    words += ["#a", "@a", "`a", "%a", "!a", "&a", "*a", "|", ">", "?", "? a", "- a", "[a]", "{a}"]
    words += ["a,b", "a[b]", "'a'", '"a"', "a'b", 'a"b', "a\\b", "\ta", "a\t", " a", "a "]
    words += ["http://example.com:8080/x", "a::b", "a:b:", "/usr/bin", "_x", "x.y-z", "é", "中文"]
    words += ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\xa0", "\ufeffa", "a\u2028b", "😀", "a\rb"]
    words += ["a\nb", "a\n\nb\n", "\n", "a \nb", "multi\nline\n  indented", "tab\tin"]
    check_same(words)
    check_same({w: w for w in words if "\n" not in w and len(w) < 100})
    check_same({"k": {w: [w, {w: w}] for w in words}})


def test_yaml_long_strings_folded_where_pyyaml_folds() -> None:
    sentence = "word " * 30 + "end"
    quoted = "it's: " + "word " * 25
    escaped = "\t" + "word " * 25
    long_word = "x" * 200
    data: Any = {"s": sentence, "q": quoted, "e": escaped, "w": long_word, "l": [sentence]}
    for depth in range(6):
        check_same(data)
        data = {f"key{depth}" * (depth + 1): data, "list": [data, [data]]}
    # Near the width limit: on either side of column 80.
    for n in range(60, 90):
        check_same({"key": "a " * (n // 2) + "b", "k" * (n - 60): ["a b " * (n // 4)]})


def test_yaml_complex_keys_go_through_pyyaml() -> None:
    check_same({"x" * 200: 1, "y": 2})
    check_same({"a\nb": 1})
    check_same({"é" * 70: 1})  # over 128 bytes (libyaml counts bytes)
    check_same_yaml({(1, 2): 3})


def test_yaml_other_types_as_pyyaml() -> None:
    dates = {"d": datetime.date(2024, 1, 2), "dt": datetime.datetime(2024, 1, 2, 3, 4)}
    check_same_yaml({"k": dates, datetime.date(2024, 1, 3): [dates], "long": {"x" * 60: dates}})
    assert output.dump({"s": {1, 2}}, "yaml") == old_yaml({"s": {1, 2}})
    assert output.dump({"b": b"raw"}, "yaml") == old_yaml({"b": b"raw"})
    assert output.dump({"big": 2**100}, "yaml") == old_yaml({"big": 2**100})
    check_same_yaml({"f": [math.nan, math.inf, -math.inf, 1e17, -0.0, 1e-7], -0.0: 0.0})
    roots: list[Any] = ["scalar", 1, None, {}, [], ()]
    for root in roots:
        assert output.dump(root, "yaml") == old_yaml(root)

    class S(str):
        pass

    # The safe dumper refuses what it does not know, as before.
    with pytest.raises(yaml.representer.RepresenterError):
        output.dump({"a": [S("x")]}, "yaml")
    with pytest.raises(yaml.representer.RepresenterError):
        output.dump({"a": object()}, "yaml")


def test_yaml_shared_values_printed_in_full() -> None:
    shared = {"a": [1, 2]}
    data = {"x": shared, "y": shared, "z": [shared, shared]}
    assert "&" not in output.dump(data, "yaml")
    check_same(data)


# -- against the references, on random data ---------------------------------------------------

_CHARS = st.sampled_from(
    [
        *"aZ09 _-.:/#,'\"\\?!&*|>%@`[]{}~=<\t\n\r",
        *["\x00", "\x85", "\xa0", "\u2028", "\u2029", "\ufeff", "é", "中", "😀", "\x7f"],
    ]
)
_WORDS = st.sampled_from(
    ["yes", "No", "null", "~", "true", "1.5", "0x1f", "017", "1:20", "2024-01-01", "<<", "="]
)
_TEXT = st.one_of(
    st.text(_CHARS, max_size=12),
    _WORDS,
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
    st.builds(
        lambda w, n: (w + " ") * n, st.sampled_from(["ab", "it's", "x: y"]), st.integers(0, 40)
    ),
)
_NUMBERS = st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.booleans(), st.none())
_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_KEYS = st.one_of(_TEXT, st.integers(-5, 5), st.booleans(), st.none())


def _tree(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)
        ),
        max_leaves=30,
    )


@settings(max_examples=300, deadline=None)
@given(_tree(st.one_of(_TEXT, _NUMBERS, _FLOATS)))
def test_yaml_same_as_pyyaml(data: Any) -> None:
    check_same_yaml(data)


@settings(max_examples=300, deadline=None)
@given(_tree(st.one_of(_TEXT, _NUMBERS)))
def test_json_same_as_python(data: Any) -> None:
    j = old_json(data)
    assert output.dump(data, "json") == j
    assert written(data, "json") == j + "\n"


@settings(max_examples=100, deadline=None)
@given(_tree(st.floats(allow_nan=False, allow_infinity=False)))
def test_json_floats_same_numbers(data: Any) -> None:
    assert json.loads(output.dump(data, "json")) == json.loads(old_json(data))
    assert written(data, "json") == output.dump(data, "json") + "\n"

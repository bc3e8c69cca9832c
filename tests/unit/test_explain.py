"""Provenance: which file and line set a value, what it overrode, what it resolved through."""

from __future__ import annotations

from pathlib import Path

import pytest

from saline.errors import ModelError
from saline.model import Model, explain


@pytest.fixture
def model(tmp_path: Path) -> Model:
    files = {
        "classes/base.yml": """\
parameters:
  _param:
    net: 10.0.0
    port: 80
  svc:
    bind: default
""",
        "classes/role.yml": """\
classes: [base]
parameters:
  svc:
    bind: ${_param:net}.${_param:last}
    tags: [a]
""",
        "nodes/n.yml": """\
classes: [role]
parameters:
  _param:
    last: 5
  svc:
    tags: [b]
  copy: ${svc}
""",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Model(str(tmp_path))


def test_winner_overrode_and_references(model: Model) -> None:
    info = explain(model, "n", "svc:bind")
    assert info["value"] == "10.0.0.5"
    assert info["set_by"] == {
        "file": "classes/role.yml",
        "line": 4,
        "value": "${_param:net}.${_param:last}",
    }
    assert info["overrode"] == [{"file": "classes/base.yml", "line": 6, "value": "default"}]
    refs = {r["ref"]: r for r in info["references"]}
    assert refs["${_param:net}"]["set_by"]["file"] == "classes/base.yml"
    assert refs["${_param:net}"]["set_by"]["line"] == 3
    assert refs["${_param:last}"]["set_by"] == {"file": "nodes/n.yml", "line": 4, "value": 5}


def test_lists_show_what_they_merged_with(model: Model) -> None:
    info = explain(model, "n", "parameters:svc:tags")
    assert info["value"] == ["a", "b"]
    assert info["set_by"]["file"] == "nodes/n.yml"
    assert info["merged_with"][0]["file"] == "classes/role.yml"


def test_a_key_inside_a_referenced_dict_leads_to_its_source(model: Model) -> None:
    info = explain(model, "n", "copy:bind")
    assert info["value"] == "10.0.0.5"
    assert info["via_ancestor"] == "parameters:copy"
    inner = info["references"][0]
    assert inner["key"] == "parameters:svc:bind"
    assert inner["set_by"]["file"] == "classes/role.yml"


def test_automatic_parameters(model: Model) -> None:
    info = explain(model, "n", "_reclass_:name:short")
    assert info["value"] == "n"
    assert info["set_by"]["file"] == "<automatic parameters>"


def test_unknown_key(model: Model) -> None:
    with pytest.raises(ModelError, match="node n has no key parameters:svc:nope"):
        explain(model, "n", "svc:nope")

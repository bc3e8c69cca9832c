"""Table-driven engine cases: tests/data/cases/*.yml (inputs and expected outputs as data).

Each case writes a small model, compiles each node named under ``expect`` or ``error``,
and compares. ``expect`` compares the listed fields exactly (parameters without
``_reclass_`` unless the case lists it). ``error`` names the error type and text the
message must contain. With ``reference: true`` kapicorp-reclass must agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from reference import reference_nodeinfo
from saline import errors
from saline.model import Model
from tools import write_model

CASES_DIR = Path(__file__).parent.parent / "data" / "cases"


def _load_cases() -> list[Any]:
    cases = []
    for f in sorted(CASES_DIR.glob("*.yml")):
        for case in yaml.safe_load(f.read_text()):
            cases.append(pytest.param(case, id=f"{f.stem}: {case['name']}"))
    return cases


def _select(data: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for field, value in want.items():
        got = data[field]
        if field == "parameters" and "_reclass_" not in value:
            got = {k: v for k, v in got.items() if k != "_reclass_"}
        out[field] = got
    return out


def _norm(x: Any) -> Any:
    return json.loads(json.dumps(x))


@pytest.mark.parametrize("case", _load_cases())
def test_case(case: dict[str, Any], tmp_path: Path) -> None:
    write_model(tmp_path, case["files"])
    model = Model(str(tmp_path))
    for node, want in case.get("expect", {}).items():
        got = model.node(node).as_dict()
        assert _norm(_select(got, want)) == _norm(want), f"node {node}"
    for node, err in case.get("error", {}).items():
        etype = getattr(errors, err["type"])
        with pytest.raises(etype) as info:
            Model(str(tmp_path)).node(node)
        message = str(info.value)
        for text in err.get("contains", []):
            assert text in message, f"{text!r} not in {message!r}"
        assert "Traceback" not in message
    if case.get("reference"):
        ref = reference_nodeinfo(str(tmp_path))
        for node, want in case.get("expect", {}).items():
            r = ref[node]
            assert not isinstance(r, str), f"reference failed on {node}: {r}"
            assert _norm(_select(r, want)) == _norm(want), f"reference disagrees on {node}"
        for node in case.get("error", {}):
            assert isinstance(ref[node], str), f"reference accepted {node}"


def test_every_case_file_parses() -> None:
    assert len(_load_cases()) >= 60
    assert os.path.isdir(CASES_DIR)

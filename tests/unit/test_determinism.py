"""Same inputs, byte-identical outputs: across processes (each with its own hash seed, so
set and string-hash order differ), and against a reviewed golden compose document.

Regenerate the golden document with SALINE_UPDATE_GOLDEN=1 (then review the git diff).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import EXAMPLE, REPO, STATE_PLACEHOLDER, compose_document

GOLDEN_COMPOSE = REPO / "tests" / "data" / "golden" / "compose" / "openstack.yml"

# Run in a fresh interpreter: the example's compose document, its inventory and its
# image tags, each after a marker line.
SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tools import EXAMPLE, FORMULAS, example_stack, fixed_packages
from saline.formulas import FormulaSet
from saline.images import model_images
from saline.model import load_model
from saline.stack import compose_text

model = load_model(str(EXAMPLE))
print("== compose")
print(compose_text(example_stack(sys.argv[2]), str(EXAMPLE)), end="")
print("== inventory")
print(json.dumps(model.inventory(), indent=1, ensure_ascii=False, default=str))
print("== images")
for spec in model_images(model, FormulaSet([str(FORMULAS)]), fixed_packages):
    print(spec.name, spec.tag)
"""


def _outputs(state: Path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "SALINE_NO_CACHE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO / "tests"), str(state)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_outputs_are_identical_across_processes(tmp_path: Path) -> None:
    state = tmp_path / "state"  # the same folder for both: nothing is written there
    first, second = _outputs(state, "0"), _outputs(state, "12345")
    assert first.count("\n== ") == 2 and "glance" in first  # the three parts, not empty
    if first != second:
        diff = "".join(
            difflib.unified_diff(
                first.splitlines(True), second.splitlines(True), "PYTHONHASHSEED=0", "=12345"
            )
        )
        pytest.fail(f"outputs differ between processes:\n{diff}")


def test_the_compose_document_matches_the_golden_one() -> None:
    got = compose_document()
    if os.environ.get("SALINE_UPDATE_GOLDEN"):
        GOLDEN_COMPOSE.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_COMPOSE.write_text(got)
    want = GOLDEN_COMPOSE.read_text()
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(True),
                got.splitlines(True),
                f"golden/{GOLDEN_COMPOSE.relative_to(GOLDEN_COMPOSE.parents[1])}",
                "saline compose (normalised)",
            )
        )
        pytest.fail(
            "the example's compose document differs from the golden one (image tags change "
            "with any formula or base image change: review, then regenerate with "
            f"SALINE_UPDATE_GOLDEN=1):\n{diff}"
        )


def test_the_normalised_document_names_no_path_of_this_machine() -> None:
    text = compose_document()
    assert str(REPO) not in text
    assert f"{STATE_PLACEHOLDER}/stacks/openstack/pillar/ctl01.openstack.local:" in text
    assert f"$REPO/{EXAMPLE.relative_to(REPO)}" in text

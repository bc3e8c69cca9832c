from __future__ import annotations

from pathlib import Path

from saline.model import load_model
from saline.model.secrets import MASK, redact, secret_values

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "openstack")


def test_example_secrets_are_found() -> None:
    params = load_model(EXAMPLE).node("ctl01.openstack.local").parameters
    secrets = secret_values(params)
    assert "example-keystone-db" in secrets and "example-admin" in secrets
    # The pillar uses them through references, so they appear in it too.
    assert params["keystone"]["server"]["database"]["password"] == "example-keystone-db"


def test_redact_text_and_structures() -> None:
    secrets = {"hunter22", "hunter2222"}
    assert redact("a hunter2222 b hunter22", secrets) == f"a {MASK} b {MASK}"
    assert redact({"diff": ["-pw=hunter22"], "n": 1}, secrets) == {"diff": [f"-pw={MASK}"], "n": 1}
    assert redact("nothing", set()) == "nothing"


def test_short_values_are_not_secrets() -> None:
    assert secret_values({"_secrets": {"a": "x", "b": True, "c": 12, "d": "long-enough"}}) == {
        "long-enough"
    }

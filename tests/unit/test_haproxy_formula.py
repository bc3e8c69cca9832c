"""The haproxy formula's refusals: a model mistake named before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_tools import edit
from saline.configs import render_nodes
from saline.errors import FormulaError
from saline.formulas import FormulaSet
from saline.model import load_model
from tools import FORMULAS, core_example

PRX01 = "prx01.openstack.local"


def test_a_listener_whose_service_no_node_runs_is_refused(tmp_path: Path) -> None:
    """The proxy keeps placement's listener, but no controller exports placement's
    address any more: haproxy's health frontend would fail for ever."""
    model = core_example(tmp_path)
    edit(
        model / "classes" / "cluster" / "openstack" / "control.yml",
        "  placement_api_address: ${_param:single_address}\n",
        "",
    )
    with pytest.raises(FormulaError, match="haproxy:proxy:listen:placement_api has no servers"):
        render_nodes(load_model(str(model)), FormulaSet([str(FORMULAS)]), [PRX01])


def test_the_core_profiles_proxy_renders(tmp_path: Path) -> None:
    """The same model, unchanged: the proxy's configuration renders (the refusal above is
    the missing export's, not the test's)."""
    model = core_example(tmp_path)
    rendered = render_nodes(load_model(str(model)), FormulaSet([str(FORMULAS)]), [PRX01])
    files = {f.path: f.content for sc in rendered[PRX01] for f in sc.files}
    assert "listen placement_api" in files["/etc/haproxy/haproxy.cfg"]

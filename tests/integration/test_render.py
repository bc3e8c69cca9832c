"""`saline render` with real Salt: golden config trees of the example model, exact line
changes for a parameter change, and broken formulas named in the error.

Regenerate the golden trees with SALINE_UPDATE_GOLDEN=1 (then review the git diff).
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools import example

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "openstack"
GOLDEN = REPO / "tests" / "data" / "golden" / "openstack"
SALINE = str(Path(sys.executable).parent / "saline")
# The nodes that run a service (derived from the formulas and the model): one golden tree
# each.
NODES = list(example().nodes)
CTL = "ctl01.openstack.local"  # the tests of one node's files


def render(
    node: str, out: Path, *extra: str, model: Path = EXAMPLE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SALINE, "render", node, "--model", str(model), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("node", NODES)
def test_golden_config_trees(node: str, tmp_path: Path) -> None:
    done = render(node, tmp_path)
    assert done.returncode == 0, done.stderr
    got = tree(tmp_path)
    golden_dir = GOLDEN / node
    if os.environ.get("SALINE_UPDATE_GOLDEN"):
        shutil.rmtree(golden_dir, ignore_errors=True)
        shutil.copytree(tmp_path, golden_dir)
    want = tree(golden_dir)
    assert sorted(got) == sorted(want)
    for path in want:
        if got[path] != want[path]:
            diff = "".join(
                difflib.unified_diff(
                    want[path].splitlines(True),
                    got[path].splitlines(True),
                    f"golden/{path}",
                    f"rendered/{path}",
                )
            )
            pytest.fail(f"{node}: {path} differs from the golden file:\n{diff}")


def test_every_node_has_a_golden_tree() -> None:
    if os.environ.get("SALINE_UPDATE_GOLDEN"):
        for stale in sorted({p.name for p in GOLDEN.iterdir()} - set(NODES)):
            shutil.rmtree(GOLDEN / stale)
    assert sorted(p.name for p in GOLDEN.iterdir()) == NODES


def test_render_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert render(CTL, a).returncode == 0
    assert render(CTL, b).returncode == 0
    assert tree(a) == tree(b)


def test_the_render_cache_gives_the_same_files_and_output(tmp_path: Path) -> None:
    """Cold (an empty cache), warm (from the cache) and without a cache: the same files and
    the same report; the cache (beside the model's, under SALINE_CACHE_DIR) is private."""
    cache = tmp_path / "cache"
    runs = {
        "cold": {"SALINE_CACHE_DIR": str(cache)},
        "warm": {"SALINE_CACHE_DIR": str(cache)},
        "off": {"SALINE_NO_CACHE": "1"},
    }
    trees, outputs = {}, {}
    for name, env in runs.items():
        out = tmp_path / "out"
        done = render(CTL, out, "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        trees[name] = tree(out)
        outputs[name] = json.loads(done.stdout)
        shutil.rmtree(out)
    assert trees["cold"] == trees["warm"] == trees["off"] and trees["cold"]
    assert outputs["cold"] == outputs["warm"] == outputs["off"]
    entries = list((cache / "rendered").rglob("*.json"))
    assert len(entries) == 1
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((cache / "rendered").stat().st_mode) == 0o700


def test_one_parameter_changes_exactly_the_lines_that_use_it(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    init = model / "classes" / "cluster" / "openstack" / "init.yml"
    init.write_text(
        init.read_text().replace(
            "openstack_database_address: 10.10.0.10", "openstack_database_address: 10.10.0.99"
        )
    )
    out = tmp_path / "out"
    done = render(CTL, out, model=model)
    assert done.returncode == 0, done.stderr
    got, want = tree(out), tree(GOLDEN / CTL)
    changed = {}
    for path in want:
        old, new = want[path].splitlines(), got[path].splitlines()
        assert len(old) == len(new)
        changed[path] = [(o, n) for o, n in zip(old, new, strict=True) if o != n]
    # Exactly the lines that hold the database's address changed, and only that in them
    # (every service with a database: its connection lines).
    for path, lines in changed.items():
        old = want[path].splitlines()
        expected = [(o, o.replace("10.10.0.10", "10.10.0.99")) for o in old if "10.10.0.10" in o]
        assert lines == expected, path
    touched = {path.split("/")[0] for path, lines in changed.items() if lines}
    assert touched == {
        "keystone",
        "glance-api",
        "placement-api",
        "neutron-server",
        "cinder-api",
        "cinder-scheduler",
        "cinder-volume",
        *NOVA_CONTROL,
    }
    assert changed["memcached/etc/memcached.conf"] == []


#: nova's services on a controller: each has nova.conf, with the databases' address.
NOVA_CONTROL = {
    "nova-api",
    "nova-conductor",
    "nova-metadata-api",
    "nova-scheduler",
    "nova-serialproxy",
}


def test_one_service_only(tmp_path: Path) -> None:
    done = render(CTL, tmp_path, "--service", "memcached")
    assert done.returncode == 0, done.stderr
    assert list(tree(tmp_path)) == ["memcached/etc/memcached.conf"]
    bad = render(CTL, tmp_path, "--service", "nova")
    has = ", ".join(example().node_services[CTL])
    assert bad.returncode == 1 and f"has no service 'nova' (it has: {has})" in bad.stderr


def _broken(tmp_path: Path, rel: str, old: str, new: str) -> Path:
    formulas = tmp_path / "formulas"
    shutil.copytree(REPO / "formulas", formulas)
    f = formulas / rel
    text = f.read_text()
    assert old in text
    f.write_text(text.replace(old, new))
    return formulas


def test_a_template_syntax_error_names_the_template(tmp_path: Path) -> None:
    formulas = _broken(
        tmp_path,
        "memcached/files/memcached.conf.j2",
        "{{ server['maxconn'] }}",
        "{{ server['maxconn' }}",
    )
    done = render(CTL, tmp_path / "out", "--formulas", str(formulas), "--service", "memcached")
    assert done.returncode == 1
    assert "memcached/files/memcached.conf.j2" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_pillar_key_names_the_template_and_key(tmp_path: Path) -> None:
    formulas = _broken(
        tmp_path, "memcached/files/memcached.conf.j2", "server['maxconn']", "server['max_conn']"
    )
    done = render(CTL, tmp_path / "out", "--formulas", str(formulas), "--service", "memcached")
    assert done.returncode == 1
    assert "memcached/files/memcached.conf.j2" in done.stderr and "max_conn" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_metadata_is_reported_before_salt_runs(tmp_path: Path) -> None:
    formulas = _broken(
        tmp_path,
        "keystone/formula.yml",
        "    user: keystone\n",
        "    user: keystone\n    restart: always\n",
    )
    done = render(CTL, tmp_path / "out", "--formulas", str(formulas))
    assert done.returncode == 1
    assert "keystone/formula.yml:" in done.stderr and "services.keystone.restart" in done.stderr


def test_salt_master_modules_give_the_model_as_pillar_and_top(tmp_path: Path) -> None:
    """What an existing Salt master would use: saline's ext_pillar and master_tops,
    found by Salt through the salt.loader entry point."""
    from saline.model import load_model
    from saline.salt.runner import minion_config

    node = CTL
    conf = tmp_path / "conf"
    conf.mkdir()
    config = minion_config(node, str(EXAMPLE), [str(REPO / "formulas")], str(tmp_path), {})
    (conf / "minion").write_text(json.dumps(config))
    salt_call = str(Path(sys.executable).parent / "salt-call")

    def call(*fun: str) -> object:
        out = subprocess.run(
            [salt_call, "--local", f"--config-dir={conf}", "--out=json", *fun],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)["local"]

    compiled = load_model(str(EXAMPLE)).node(node)
    assert call("pillar.items") == json.loads(json.dumps(compiled.parameters))
    assert call("state.show_top") == {"base": compiled.applications}


def test_install_states_need_no_pillar_and_start_nothing(tmp_path: Path) -> None:
    """Image builds run install states: no secrets, no deployment values, no services."""
    from saline.formulas import FormulaSet
    from saline.salt.runner import low_states

    model = tmp_path / "model"
    (model / "classes").mkdir(parents=True)
    (model / "nodes").mkdir()
    (model / "nodes" / "bare.yml").write_text("parameters: {}\n")  # a node with no pillar
    formulas = FormulaSet([str(REPO / "formulas")])
    for name, (_formula, svc) in formulas.services.items():
        chunks = low_states("bare", str(model), formulas.dirs, svc.install)
        assert chunks, name
        assert {c["state"] for c in chunks} <= {"pkg", "file", "user", "group"}, name
        assert any(c["state"] == "pkg" and c["fun"] == "installed" for c in chunks), name

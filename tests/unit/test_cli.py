"""The command line: output shapes, formats, and errors as one message without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from saline.cli import main

EXAMPLE = str(Path(__file__).parent.parent.parent / "examples" / "openstack")
CTL = "ctl01.openstack.local"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_nodes_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "model", "nodes", "--model", EXAMPLE)
    assert code == 0
    assert out.split() == sorted(out.split()) and CTL in out.split()
    code, out, _ = run(capsys, "model", "nodes", "--model", EXAMPLE, "--format", "json")
    assert json.loads(out) == sorted(json.loads(out)) and len(json.loads(out)) == 7


def test_show_yaml_and_json_agree(capsys: pytest.CaptureFixture[str]) -> None:
    _, as_yaml, _ = run(capsys, "model", "show", CTL, "--model", EXAMPLE)
    _, as_json, _ = run(capsys, "model", "show", CTL, "--model", EXAMPLE, "--format", "json")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)
    data = json.loads(as_json)
    assert data["parameters"]["keystone"]["server"]["database"]["host"] == "10.10.0.10"
    assert set(data) == {
        "__reclass__",
        "applications",
        "classes",
        "environment",
        "exports",
        "parameters",
    }


def test_show_one_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "model", "show", CTL, "keystone:server:bind", "--model", EXAMPLE, "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["port"] == 5000


def test_model_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALINE_MODEL", EXAMPLE)
    code, out, _ = run(capsys, "model", "nodes")
    assert code == 0 and CTL in out


def test_inventory_has_reclass_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "model", "inventory", "--model", EXAMPLE, "--format", "json")
    assert code == 0
    inv = json.loads(out)
    assert set(inv) == {"nodes", "classes", "applications"}
    node = inv["nodes"][CTL]
    for key in ("parameters", "classes", "applications", "environment", "exports"):
        assert key in node
    assert CTL in inv["classes"]["system.keystone.server"]
    # The proxy finds the controllers through an inventory query.
    servers = inv["nodes"]["prx01.openstack.local"]["parameters"]["haproxy"]["proxy"]["listen"]
    assert servers["keystone_public_api"]["servers"] == {
        CTL: "10.10.0.30",
        "ctl02.openstack.local": "10.10.0.31",
    }


def test_inventory_output_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    _, one, _ = run(capsys, "model", "inventory", "--model", EXAMPLE, "--format", "json")
    _, two, _ = run(capsys, "model", "inventory", "--model", EXAMPLE, "--format", "json")
    assert one == two


def test_explain_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "model", "explain", CTL, "glance:server:identity:auth_url", "--model", EXAMPLE
    )
    assert code == 0
    assert "classes/system/glance/server.yml:25" in out
    assert "${_param:openstack_control_address}" in out
    # Through the control plane's address to the proxy's.
    assert "classes/cluster/openstack/init.yml:14" in out
    assert "classes/cluster/openstack/init.yml:12" in out


def test_errors_are_one_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "classes").mkdir()
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "n.yml").write_text("classes: [missing]\n")
    code, out, err = run(capsys, "model", "show", "n", "--model", str(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith("error: nodes/n.yml:1, node n: class 'missing' not found")
    assert "Traceback" not in err
    code, _, err = run(capsys, "model", "show", "nope", "--model", str(tmp_path))
    assert code == 1 and "no node named 'nope'" in err
    code, _, err = run(capsys, "model", "nodes", "--model", str(tmp_path / "absent"))
    assert code == 1 and "does not exist" in err


def test_console_script_in_a_real_process(tmp_path: Path) -> None:
    """The installed `saline` command: help, a real compile, and a broken model."""
    exe = os.path.join(os.path.dirname(sys.executable), "saline")
    help_text = subprocess.run(
        [exe, "model", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("nodes", "show", "inventory", "explain"):
        assert cmd in help_text
    done = subprocess.run(
        [exe, "model", "show", CTL, "--model", EXAMPLE, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["environment"] == "base"
    (tmp_path / "classes").mkdir()
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "n.yml").write_text("parameters:\n  a: [1\n")
    broken = subprocess.run(
        [exe, "model", "inventory", "--model", str(tmp_path)], capture_output=True, text=True
    )
    assert broken.returncode == 1
    assert "nodes/n.yml:" in broken.stderr and "Traceback" not in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_stack_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("up", "down", "status", "logs", "compose", "openrc", "smoke"):
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "--model DIR" in out and "--stack NAME" in out, command


def test_openrc_and_compose_without_podman(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALINE_STATE_DIR", str(tmp_path / "state"))
    code, out, _ = run(capsys, "openrc", "--model", EXAMPLE)
    assert code == 0 and "export OS_AUTH_URL=http://10.10.0.40:5000/v3\n" in out
    code, out, _ = run(capsys, "openrc", "--model", EXAMPLE, "--format", "json")
    assert json.loads(out)["OS_USERNAME"] == "admin"
    target = tmp_path / "compose.yml"
    code, out, _ = run(capsys, "compose", "--model", EXAMPLE, "--out", str(target))
    assert code == 0 and f"podman-compose -f {target} up -d" in out
    assert yaml.safe_load(target.read_text())["name"] == "openstack"
    # Each instance reads its node's pillar through its own link (apply moves one
    # instance at a time); the pillar files hold secrets: owner only, in 0700 folders.
    folder = tmp_path / "state" / "stacks" / "openstack" / "pillar" / CTL
    pillar = folder / "keystone.json"
    assert pillar.is_symlink() and not os.readlink(pillar).startswith("/")
    assert pillar.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert json.loads(pillar.read_text())["keystone"]["server"]["admin_password"] == "example-admin"


def test_a_stack_mistake_is_one_message(tmp_path: Path) -> None:
    model = tmp_path / "model"
    subprocess.run(["cp", "-r", EXAMPLE, str(model)], check=True)
    node = model / "nodes" / "msg01.openstack.local.yml"
    node.write_text(node.read_text().replace("    single_address: 10.10.0.20\n", ""))
    saline = str(Path(sys.executable).parent / "saline")
    env = {**os.environ, "SALINE_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [saline, "up", "--model", str(model)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        "error: nodes/msg01.openstack.local.yml, node msg01.openstack.local, "
        "key parameters:_param:single_address: "
    )


def test_openrc_from_the_repository_root_uses_saline_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALINE_MODEL", raising=False)
    monkeypatch.setenv("SALINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(Path(EXAMPLE).parents[1])
    code, out, _ = run(capsys, "openrc")
    assert code == 0 and "export OS_AUTH_URL=http://10.10.0.40:5000/v3\n" in out


def test_no_model_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALINE_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "model", "nodes")
    assert code == 2 and out == ""
    assert "--model DIR" in err and "SALINE_MODEL" in err and "saline.toml" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_ssh_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for target in ("ssh://h:abc", "ssh://h:70000", "ftp://h", "ssh://"):
        code, _, err = run(
            capsys, "host", "apply", CTL, "--host", target, "--model", EXAMPLE, "--test"
        )
        assert code == 2, target
        assert err.startswith(f"error: --host {target!r}"), err
        assert "Traceback" not in err


def test_ssh_targets_parse() -> None:
    from saline.cli.host import SshTarget, parse_host

    assert parse_host("local") is None
    assert parse_host("ssh://h") == SshTarget("root", "h", 22)
    assert parse_host("ssh://op@10.0.0.5:2222") == SshTarget("op", "10.0.0.5", 2222)
    v6 = parse_host("ssh://[::1]:2200")
    assert v6 == SshTarget("root", "::1", 2200) and v6.spec == "root@[::1]:2200"

    from saline.salt.runner import parse_target

    assert parse_target(v6.spec) == ("root", "::1", 2200)  # what the Salt runner reads


def test_apply_is_the_day_two_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["apply", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "PLAN_FILE" in out and "--yes" in out and "drained" in out


def test_unwritable_out_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "render",
        CTL,
        "--model",
        EXAMPLE,
        "--service",
        "memcached",
        "--out",
        "/etc/hostname/below-a-file",
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: Not a directory: /etc/hostname/below-a-file")


def test_an_unexpected_error_points_at_a_debug_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import saline.model

    def broken(*_: object) -> int:
        raise RuntimeError("something saline did not expect")

    monkeypatch.setattr(saline.model, "explain", broken)
    monkeypatch.setenv("SALINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SALINE_DEBUG", raising=False)
    code, _, err = run(capsys, "model", "explain", CTL, "keystone", "--model", EXAMPLE)
    assert code == 70
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error, a bug in saline: RuntimeError: something saline did not expect" in err
    log = Path(err.rsplit("(traceback: ", 1)[1].rstrip().rstrip(")"))
    assert log.parent == tmp_path / "state" / "logs"
    assert "Traceback" in log.read_text() and "something saline did not expect" in log.read_text()
    monkeypatch.setenv("SALINE_DEBUG", "1")
    code, _, err = run(capsys, "model", "explain", CTL, "keystone", "--model", EXAMPLE)
    assert code == 70 and "Traceback" in err


CTRL_C_SCRIPT = """
import sys
import saline.cli.model as commands
from saline.runtime.process import run

def slow(args, ctx):
    print("started", flush=True)
    run(["sh", "-c", "sleep 60 & echo $! > {pidfile}; wait"], timeout=120)
    return 0

commands.cmd_nodes = slow
from saline.cli import main
sys.exit(main(["model", "nodes", "--model", {model!r}]))
"""


def test_ctrl_c_stops_what_saline_started_and_exits_130(tmp_path: Path) -> None:
    """A real process gets SIGINT while a command it started runs: the command's whole
    process group is stopped (its grandchild too), one line is printed, exit 130."""
    import signal
    import time

    pidfile = tmp_path / "sleep.pid"
    script = CTRL_C_SCRIPT.format(pidfile=pidfile, model=EXAMPLE)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        grandchild = int(pidfile.read_text())
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted"
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it to reap it is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_model_command_leaves_the_cycle_collector_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import gc

    assert gc.isenabled()
    code, _, _ = run(capsys, "model", "nodes", "--model", EXAMPLE)
    assert code == 0 and gc.isenabled()


# -- --target kubernetes --------------------------------------------------------------------

KUBE_EXAMPLE = str(Path(EXAMPLE).parent / "openstack-kubernetes")
KUBE_COMMANDS = (
    "plan",
    "apply",
    "rollback",
    "releases",
    "status",
    "down",
    "logs",
    "openrc",
    "smoke",
)


def test_the_kubernetes_commands_take_the_cluster_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in KUBE_COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        for option in ("--target {compose,kubernetes}", "--kubeconfig FILE", "--context NAME"):
            assert option in out, (command, option)
        assert "--namespace NS" in out and "--kube-registry HOST:PORT" in out
    for command in ("apply", "rollback"):
        main_help = subprocess.run(
            [str(Path(sys.executable).parent / "saline"), command, "--help"],
            capture_output=True,
            text=True,
        ).stdout
        assert "--timeout SECONDS" in main_help


def test_compose_only_commands_say_what_to_use_on_kubernetes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "up", "--target", "kubernetes", "--model", KUBE_EXAMPLE)
    assert code == 2
    assert err == (
        "error: `saline up` is for the compose stack (the target is kubernetes): on "
        "Kubernetes `saline apply --target kubernetes` creates and changes everything\n"
    )
    code, _, err = run(capsys, "compose", "--target", "kubernetes", "--model", KUBE_EXAMPLE)
    assert code == 2 and "saline manifests --target kubernetes" in err


def test_kubernetes_mistakes_are_one_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    missing = str(tmp_path / "nope")
    base = ("--target", "kubernetes", "--model", KUBE_EXAMPLE)
    code, out, err = run(capsys, "status", *base, "--kubeconfig", missing)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {missing}: no such kubeconfig file")
    assert len(err.strip().splitlines()) == 1
    # A server that does not answer.
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "here",
            }
        )
    )
    code, _, err = run(capsys, "down", *base, "--kubeconfig", str(config))
    assert code == 1
    assert err.startswith("error: no Kubernetes API server answers at https://127.0.0.1:9")
    code, _, err = run(capsys, "status", *base, "--kubeconfig", str(config), "--context", "x")
    assert code == 1 and "no context 'x' (it has: here)" in err
    # A namespace Kubernetes would refuse, before anything is compiled or connected.
    code, _, err = run(capsys, "status", *base, "--kubeconfig", str(config), "--namespace", "A_b")
    assert code == 2 and err.startswith("error: namespace 'A_b': at most 63 lowercase")
    # --from is a comparison of two revisions: no cluster in it.
    code, _, err = run(capsys, "plan", *base, "--kubeconfig", str(config), "--from", "HEAD")
    assert code == 2 and "--from compares two revisions" in err


def test_releases_on_kubernetes_need_no_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALINE_STATE_DIR", str(tmp_path / "state"))
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "here",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    code, out, _ = run(capsys, "releases", "--target", "kubernetes", "--model", KUBE_EXAMPLE)
    assert code == 0
    assert out == (
        "namespace openstack-kubernetes at https://10.1.2.3:6443: no release recorded yet "
        "(`saline apply` records one)\n"
    )


def test_the_releases_table_marks_the_current_one_and_names_its_source() -> None:
    from saline.cli.common import releases_table

    history = [
        {"id": "a1", "time": "T1", "outcome": "applied", "current": False, "source": {}},
        {
            "id": "b2",
            "time": "T2",
            "outcome": "applied",
            "current": True,
            "source": {"model": "/m", "revision": "0123456789abcdef"},
        },
    ]
    lines = releases_table(history).splitlines()
    assert lines[0].split() == ["ID", "TIME", "OUTCOME", "SOURCE"]
    assert lines[1].split() == ["a1", "T1", "applied"]
    assert lines[2].split() == ["b2", "*", "T2", "applied", "/m", "0123456789ab"]

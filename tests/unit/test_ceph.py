"""The ceph formula without a cluster: its metadata, what it renders for the test model's
node (tests/data/ceph: ceph01 with the example's class system.ceph.single), the order the
stack runs its daemons and tasks in, the render's refusals, and its scripts (the checks
and the bootstrap tasks) against stand-ins for the daemons and the Ceph tools."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from saline.configs import render_nodes
from saline.errors import FormulaError
from saline.formulas import FormulaSet
from saline.model import load_model
from tools import FORMULAS, REPO, STATE_PLACEHOLDER, example_stack

MODEL = REPO / "tests" / "data" / "ceph"
NODE = "ceph01.ceph.local"
FILES = FORMULAS / "ceph" / "files"
SHIPPED = FormulaSet([str(FORMULAS)])
FSID = "5d3c6e0a-8f0e-4b7c-9a51-2f4d1c0b7e61"
OSD_UUID = "0c6a1e52-3b9d-4f57-8e2a-71d5b9c4f803"


def script(name: str) -> ModuleType:
    """One of the formula's scripts (files/NAME.py) as a module."""
    spec = importlib.util.spec_from_file_location(f"ceph_{name}", FILES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- metadata ----------------------------------------------------------------------------


def test_the_formula_declares_three_daemons_on_one_common_layer() -> None:
    meta = SHIPPED.formulas["ceph"].meta
    assert meta.common is not None and meta.common.install == ["ceph.install.common"]
    assert {n: s.pillar for n, s in meta.services.items()} == {
        "ceph-mon": "ceph:mon",
        "ceph-mgr": "ceph:mgr",
        "ceph-osd": "ceph:osd",
    }
    mon, mgr, osd = (meta.services[n] for n in ("ceph-mon", "ceph-mgr", "ceph-osd"))
    # The monitor's store and the OSD's BlueStore outlive their containers, each its own.
    assert (mon.volumes, mon.stateful) == ({"data": "/var/lib/ceph/mon"}, True)
    assert (osd.volumes, osd.stateful) == ({"data": "/var/lib/ceph/osd"}, True)
    assert mgr.volumes == {}
    assert mgr.depends == osd.depends == ["ceph-mon"]
    # Nothing of the node: no privilege, device or capability (measured without).
    for spec in (mon, mgr, osd):
        assert not spec.host.needs_host() and spec.capabilities == []
        assert spec.user == "ceph"
        assert {spec.impact(p).change for p in spec.config_files} == {"restart"}
    # The monitor's store before it starts; the OSD once the monitor runs, its pools
    # once for the cluster when it serves.
    assert [(t.name, t.scope, t.needs_running) for t in mon.bootstrap] == [
        ("mkfs", "instance", False)
    ]
    assert [(t.name, t.scope, t.needs_running) for t in osd.bootstrap] == [
        ("mkfs", "instance", False),
        ("pools", "service", True),
    ]
    assert mon.status is not None and mon.status.command[-1] == "status"


# -- what it renders ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    """service -> path -> content, for the test model's node."""
    configs = render_nodes(load_model(str(MODEL)), SHIPPED)[NODE]
    return {sc.service.name: {f.path: f.content for f in sc.files} for sc in configs}


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(text)
    return parser


def test_each_daemon_gets_ceph_conf_and_its_id(rendered: dict[str, dict[str, str]]) -> None:
    assert sorted(rendered) == ["ceph-mgr", "ceph-mon", "ceph-osd"]
    for service, daemon, ident in (
        ("ceph-mon", "mon", "ceph01"),
        ("ceph-mgr", "mgr", "ceph01"),
        ("ceph-osd", "osd", "0"),
    ):
        assert sorted(rendered[service]) == [
            "/etc/ceph/ceph.conf",
            f"/etc/ceph/saline-{daemon}.env",
        ]
        env = rendered[service][f"/etc/ceph/saline-{daemon}.env"]
        assert [line for line in env.splitlines() if not line.startswith("#")] == [
            f"CEPH_ID={ident}"
        ]
        conf = ini(rendered[service]["/etc/ceph/ceph.conf"])
        g = conf["global"]
        assert g["fsid"] == FSID
        assert g["mon_initial_members"] == "ceph01"
        assert g["mon_host"] == "[v2:10.66.0.60:3300,v1:10.66.0.60:6789]"
        assert [g[f"auth_{k}_required"] for k in ("cluster", "service", "client")] == ["none"] * 3
        assert g["auth_allow_insecure_global_id_reclaim"] == "false"
        # The class's options, booleans as Ceph spells them.
        assert (g["osd_pool_default_size"], g["mon_allow_pool_size_one"]) == ("1", "true")
        assert g["mon_warn_on_pool_no_redundancy"] == "false"


def test_each_ceph_conf_has_only_the_sections_its_daemon_reads(
    rendered: dict[str, dict[str, str]],
) -> None:
    sections = {s: ini(f["/etc/ceph/ceph.conf"]).sections() for s, f in rendered.items()}
    assert sections == {
        "ceph-mon": ["global", "mon", "mon.ceph01"],
        "ceph-mgr": ["global"],
        "ceph-osd": ["global", "osd", "osd.0"],
    }
    mon = ini(rendered["ceph-mon"]["/etc/ceph/ceph.conf"])
    assert mon["mon.ceph01"]["public_addr"] == "10.66.0.60"
    assert mon["mon"]["mon_data_avail_warn"] == "10"
    osd = ini(rendered["ceph-osd"]["/etc/ceph/ceph.conf"])["osd.0"]
    assert (osd["osd_objectstore"], osd["bluestore_block_create"]) == ("bluestore", "true")
    assert osd["bluestore_block_size"] == str(4 * 2**30)
    assert osd["crush_location"] == "root=default host=ceph01"


def model_with(tmp_path: Path, edit: dict[str, Any]) -> str:
    """A copy of the test model whose node sets ``edit`` (merged into its parameters)."""
    target = tmp_path / "model"
    shutil.copytree(MODEL, target, symlinks=False)
    node = target / "nodes" / f"{NODE}.yml"
    data = yaml.safe_load(node.read_text())
    data["parameters"].update(edit)
    node.write_text(yaml.safe_dump(data))
    return str(target)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"ceph": {"common": {"auth": "cephx"}}}, "ceph:common:auth is cephx"),
        ({"ceph": {"common": {"fsid": ""}}}, "ceph:common:fsid is not set"),
        ({"ceph": {"mon": {"id": "ceph02"}}}, "monitor ceph02 (ceph:mon:id) is not among"),
        ({"ceph": {"osd": {"uuid": ""}}}, "ceph:osd needs an id"),
    ],
)
def test_a_wrong_pillar_fails_the_render_naming_the_key(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    with pytest.raises(FormulaError, match=re.escape(message)):
        render_nodes(load_model(model_with(tmp_path, edit)), SHIPPED)


def test_an_osd_option_changes_the_osds_files_only(
    tmp_path: Path, rendered: dict[str, dict[str, str]]
) -> None:
    edit = {"ceph": {"common": {"config": {"osd": {"osd_max_backfills": 2}}}}}
    configs = render_nodes(load_model(model_with(tmp_path, edit)), SHIPPED)[NODE]
    after = {sc.service.name: {f.path: f.content for f in sc.files} for sc in configs}
    changed = sorted(s for s in after if after[s] != rendered[s])
    assert changed == ["ceph-osd"]
    assert ini(after["ceph-osd"]["/etc/ceph/ceph.conf"])["osd"]["osd_max_backfills"] == "2"


# -- the order the stack runs them in ----------------------------------------------------


def test_the_stack_starts_the_monitor_first_and_makes_the_pools_last() -> None:
    stack = example_stack(STATE_PLACEHOLDER, MODEL, project="ceph")
    order = [s.name for s in stack.plan.steps]
    assert order.index("ceph-mon-mkfs") < order.index("ceph-mon")
    assert order.index("ceph-mon") < order.index("ceph-osd-mkfs") < order.index("ceph-osd")
    assert order.index("ceph-osd") < order.index("ceph-osd-pools")
    assert "ceph-mon" in stack.plan.step("ceph-mgr").after
    assert "ceph-mon" in stack.plan.step("ceph-osd-mkfs").after
    assert "ceph-osd" in stack.plan.step("ceph-osd-pools").after
    doc = stack.plan.document
    # Every daemon in the node's network namespace: the monitor's address is the node's.
    for name in ("ceph-mon", "ceph-mgr", "ceph-osd"):
        assert doc["services"][name]["network_mode"] == "service:ceph01"
        assert "privileged" not in doc["services"][name]
    assert doc["services"]["ceph01"]["networks"]["stack"]["ipv4_address"] == "10.66.0.60"
    # The OSD's task waits for the monitor's port; its data is the OSD's volume.
    mkfs = doc["services"]["ceph-osd-mkfs"]
    assert mkfs["environment"]["SALINE_WAIT_FOR"] == "10.66.0.60:3300"
    assert "ceph-osd-data:/var/lib/ceph/osd" in mkfs["volumes"]
    assert {v["name"] for v in doc["volumes"].values()} >= {
        "ceph_ceph-mon-data",
        "ceph_ceph-osd-data",
    }


# -- the checks --------------------------------------------------------------------------


class FakeAsok:
    """A daemon's admin socket: answers each request with ``answers[prefix]`` in Ceph's
    framing (4 bytes of length, big-endian, then the JSON), and records the requests."""

    def __init__(self, path: str, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\0"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data.rstrip(b"\0"))
                self.requests.append(request)
                body = json.dumps(self.answers[request["prefix"]]).encode()
                conn.sendall(struct.pack(">I", len(body)) + body)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = script("check")
    (tmp_path / "etc").mkdir()
    (tmp_path / "run").mkdir()
    for daemon, ident in (("mon", "ceph01"), ("mgr", "ceph01"), ("osd", "0")):
        (tmp_path / "etc" / f"saline-{daemon}.env").write_text(f"# x\nCEPH_ID={ident}\n")
    monkeypatch.setattr(module, "ENV_DIR", str(tmp_path / "etc"))
    monkeypatch.setattr(module, "RUN_DIR", str(tmp_path / "run"))
    yield module


@pytest.mark.parametrize(
    ("daemon", "asok", "answer", "code", "line"),
    [
        ("mon", "mon.ceph01", {"state": "leader", "quorum": [0]}, 0, "mon.ceph01: leader"),
        ("mon", "mon.ceph01", {"state": "probing"}, 1, "mon.ceph01: probing, not in the quorum"),
        ("mgr", "mgr.ceph01", {"initialized": True, "mgrmap_epoch": 7}, 0, "initialized"),
        ("mgr", "mgr.ceph01", {"initialized": False}, 1, "mgr.ceph01: not initialized yet"),
        ("osd", "osd.0", {"state": "active", "num_pgs": 97, "newest_map": 23}, 0, "97 PGs"),
        ("osd", "osd.0", {"state": "booting"}, 1, "osd.0: booting, not active"),
    ],
)
def test_health_asks_the_admin_socket(
    check: ModuleType,
    capsys: pytest.CaptureFixture[str],
    daemon: str,
    asok: str,
    answer: dict[str, Any],
    code: int,
    line: str,
) -> None:
    prefix = {"mon": "mon_status", "mgr": "mgr_status", "osd": "status"}[daemon]
    fake = FakeAsok(os.path.join(check.RUN_DIR, f"ceph-{asok}.asok"), {prefix: answer})
    try:
        assert check.main(["health", daemon]) == code
    finally:
        fake.close()
    assert line in capsys.readouterr().out
    assert fake.requests == [{"prefix": prefix, "format": "json"}]


def test_health_without_a_daemon_says_so(
    check: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check.main(["health", "osd"]) == 1
    assert "osd.0: admin socket" in capsys.readouterr().out


STATUS: dict[str, Any] = {
    "fsid": FSID,
    "health": {"status": "HEALTH_OK", "checks": {}},
    "quorum_names": ["ceph01"],
    "osdmap": {"num_osds": 1, "num_up_osds": 1, "num_in_osds": 1},
    "pgmap": {
        "num_pgs": 97,
        "num_pools": 4,
        "pgs_by_state": [{"state_name": "active+clean", "count": 97}],
    },
}


class FakeCluster:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def shutdown(self) -> None:
        pass


def status_of(check: ModuleType, monkeypatch: pytest.MonkeyPatch, **st: Any) -> dict[str, Any]:
    answers = {"status": {**STATUS, **st}, "mgr stat": {"available": True, "active_name": "ceph01"}}
    monkeypatch.setattr(check, "connect", lambda mon_host=None: FakeCluster(answers))
    monkeypatch.setattr(check, "ask", lambda conn, prefix, **args: conn.answers[prefix])
    view: dict[str, Any] = check.status()
    return view


def test_status_is_one_line_of_the_whole_cluster(
    check: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = status_of(check, monkeypatch)
    assert view["healthy"] is True
    assert view["summary"] == (
        "HEALTH_OK; 1 mon(s) in quorum (ceph01); mgr ceph01 active; osds: 1, 1 up, 1 in; "
        "97 pgs 97 active+clean, 4 pools"
    )
    assert (view["osds"]["num_up_osds"], view["pgs"], view["pools"]) == (1, {"active+clean": 97}, 4)


def test_status_is_unhealthy_with_a_warning_or_unclean_pgs(
    check: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    warn = {
        "status": "HEALTH_WARN",
        "checks": {
            "MON_DISK_LOW": {"summary": {"message": "mon ceph01 is low on available space"}}
        },
    }
    view = status_of(check, monkeypatch, health=warn)
    assert view["healthy"] is False
    assert view["summary"].startswith("HEALTH_WARN (MON_DISK_LOW); ")
    assert view["checks"] == {"MON_DISK_LOW": "mon ceph01 is low on available space"}
    # Just after a pool is made: HEALTH_OK, but its PGs are not known yet.
    pgs = {
        "num_pgs": 97,
        "num_pools": 4,
        "pgs_by_state": [
            {"state_name": "active+clean", "count": 65},
            {"state_name": "unknown", "count": 32},
        ],
    }
    view = status_of(check, monkeypatch, pgmap=pgs)
    assert view["healthy"] is False and "65 active+clean, 32 unknown" in view["summary"]


# -- the bootstrap tasks -----------------------------------------------------------------


@pytest.fixture
def boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, list[list[str]]]]:
    """The bootstrap script with its data folders under tmp_path, its commands recorded
    (and the files they would make made), no chown (no ceph user here)."""
    module = script("bootstrap")
    monkeypatch.setattr(module, "MON_ROOT", str(tmp_path / "mon"))
    monkeypatch.setattr(module, "OSD_ROOT", str(tmp_path / "osd"))
    monkeypatch.setattr(module, "own", lambda path: None)
    ran: list[list[str]] = []

    def run(argv: list[str]) -> str:
        ran.append(argv)
        if argv[:2] == ["ceph-mon", "--mkfs"]:
            data = tmp_path / "mon" / f"ceph-{argv[argv.index('-i') + 1]}"
            data.mkdir(parents=True, exist_ok=True)
            (data / "kv_backend").write_text("rocksdb\n")
        return ""

    monkeypatch.setattr(module, "run", run)
    yield module, ran


MKFS = ["mon-mkfs", "--id", "ceph01", "--fsid", FSID, "--member", "ceph01=10.66.0.60"]


def test_mon_mkfs_makes_the_store_once(
    boot: tuple[ModuleType, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    module, ran = boot
    assert module.main(MKFS) == 0
    monmaptool, mkfs = ran
    assert monmaptool[:5] == ["monmaptool", "--create", "--clobber", "--fsid", FSID]
    assert monmaptool[5:8] == ["--addv", "ceph01", "[v2:10.66.0.60:3300,v1:10.66.0.60:6789]"]
    assert mkfs[:6] == ["ceph-mon", "--mkfs", "--cluster", "ceph", "-i", "ceph01"]
    assert mkfs[-4:] == ["--setuser", "ceph", "--setgroup", "ceph"]
    assert (Path(module.MON_ROOT) / "ceph-ceph01" / "saline-fsid").read_text() == FSID + "\n"
    # Again: the store is there, nothing runs.
    assert module.main(MKFS) == 0
    assert len(ran) == 2
    assert "its store exists" in capsys.readouterr().out


def test_mon_mkfs_refuses_another_clusters_store(
    boot: tuple[ModuleType, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    module, ran = boot
    assert module.main(MKFS) == 0
    other = "11111111-2222-3333-4444-555555555555"
    assert module.main([*MKFS[:3], "--fsid", other, *MKFS[5:]]) == 1
    err = capsys.readouterr().err
    assert f"holds the store of cluster {FSID}, but ceph:common:fsid is {other}" in err
    assert len(ran) == 2


def test_osd_mkfs_refuses_another_osds_data(
    boot: tuple[ModuleType, list[list[str]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module, ran = boot
    data = Path(module.OSD_ROOT) / "ceph-0"
    data.mkdir(parents=True)
    (data / "ready").write_text("ready\n")
    (data / "fsid").write_text("99999999-2222-3333-4444-555555555555\n")
    (data / "ceph_fsid").write_text(FSID + "\n")
    monkeypatch.setattr(module, "cluster", lambda op_timeout=60: FakeCluster({}))
    monkeypatch.setattr(module, "command", lambda conn, cmd, ok=(0,): (0, b'{"osdid": 0}', ""))
    assert module.main(["osd-mkfs", "--id", "0", "--uuid", OSD_UUID, "--fsid", FSID]) == 1
    assert "holds OSD 99999999-2222-3333-4444-555555555555" in capsys.readouterr().err
    assert ran == []
    # Its own data: left alone.
    (data / "fsid").write_text(OSD_UUID + "\n")
    assert module.main(["osd-mkfs", "--id", "0", "--uuid", OSD_UUID, "--fsid", FSID]) == 0
    assert "made before" in capsys.readouterr().out
    assert ran == []

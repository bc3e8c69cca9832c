"""Virtual addresses (formula.yml ``vrrp`` and ``capabilities``: keepalived): the schema,
the checks of the model before anything starts (each mistake one ModelError naming the
file, line and key), the compose rendering (cap_add), keepalived's configuration from the
salt-formulas pillar, and the refusal on Kubernetes. Pure, but for Salt rendering the
test model's files.
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from release_tools import edit as edit_file
from release_tools import release_of
from saline.configs import render_nodes
from saline.errors import LocatedError, ModelError
from saline.formulas import FormulaSet
from saline.formulas.schema import Service
from saline.formulas.vrrp import check_virtual_addresses
from saline.manifests.kubernetes import KubeOptions, kubernetes_manifests
from saline.model import load_model
from saline.stack import Stack
from tools import FORMULAS, REPO, STATE_PLACEHOLDER, example_stack

VIP = REPO / "tests" / "data" / "vip"
SHIPPED = FormulaSet([str(FORMULAS)])
INSTANCE_CLASS = "classes/system/keepalived/cluster/instance/vip.yml"
PRX02 = "nodes/prx02.vip.local.yml"
CONF = "/etc/keepalived/keepalived.conf"


def vip_copy(tmp_path: Path) -> Path:
    target = tmp_path / "vip"
    shutil.copytree(VIP, target)
    return target


def edit(model: Path, rel: str, old: str, new: str) -> None:
    edit_file(model / rel, old, new)


def override(model: Path, rel: str, instance: dict[str, Any]) -> None:
    """Set keys of a node's VRRP instances in its own file (the file named in errors);
    ``~KEY`` replaces a list instead of extending it (reclass)."""
    path = model / rel
    data = yaml.safe_load(path.read_text())
    data["parameters"]["keepalived"] = {"cluster": {"instance": instance}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def stack_of(model: Path | str = VIP, formulas: list[str] | None = None) -> Stack:
    return example_stack(STATE_PLACEHOLDER, model, formulas, project="vip-unit")


def error(model: Path) -> ModelError:
    with pytest.raises(ModelError) as caught:
        stack_of(model)
    return caught.value


def line_of(model: Path, rel: str, text: str) -> int:
    for i, line in enumerate((model / rel).read_text().splitlines(), 1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in {rel}")


def at(model: Path, rel: str, text: str, key: str, node: str = "prx02") -> str:
    """The start of the message for the value on ``rel``'s line holding ``text``."""
    where = f"{rel}:{line_of(model, rel, text)}, node {node}.vip.local, key parameters:"
    return where + key


# -- schema ------------------------------------------------------------------------------


def service(**extra: Any) -> dict[str, Any]:
    return {
        "pillar": "x:server",
        "install": ["x.install"],
        "command": ["x"],
        "health": {"tcp": {"port": 1}},
        **extra,
    }


def test_the_shipped_keepalived_holds_addresses_with_the_capabilities_it_needs() -> None:
    spec = SHIPPED.services["keepalived"][1]
    assert spec.capabilities == ["NET_ADMIN", "NET_RAW"]
    assert spec.vrrp is not None and spec.vrrp.instances == "keepalived:cluster:instance"
    assert spec.api_check is not None and spec.health.exec is not None
    # Every other shipped service runs with the runtime's default capabilities.
    others = {n: s.capabilities for n, (_, s) in SHIPPED.services.items() if n != "keepalived"}
    assert set(map(tuple, others.values())) == {()}


def test_capabilities_are_linux_capability_names() -> None:
    assert Service.model_validate(service(capabilities=["NET_BIND_SERVICE"])).capabilities == [
        "NET_BIND_SERVICE"
    ]
    with pytest.raises(ValidationError, match="'NET_ADMN' is not a Linux capability"):
        Service.model_validate(service(capabilities=["NET_ADMN"]))
    with pytest.raises(ValidationError, match=r"'CAP_NET_RAW' is not a Linux capability \(without"):
        Service.model_validate(service(capabilities=["CAP_NET_RAW"]))
    with pytest.raises(ValidationError, match="listed twice"):
        Service.model_validate(service(capabilities=["NET_RAW", "NET_RAW"]))


def test_vrrp_needs_net_admin_and_net_raw() -> None:
    vrrp = {"instances": "keepalived:cluster:instance"}
    with pytest.raises(ValidationError, match=r"vrrp needs capabilities .*missing: NET_RAW"):
        Service.model_validate(service(vrrp=vrrp, capabilities=["NET_ADMIN"]))
    with pytest.raises(ValidationError, match="instances"):
        Service.model_validate(
            service(vrrp={"instances": "a::b"}, capabilities=["NET_ADMIN", "NET_RAW"])
        )
    ok = Service.model_validate(service(vrrp=vrrp, capabilities=["NET_RAW", "NET_ADMIN"]))
    assert ok.vrrp is not None


def test_a_misspelt_capability_in_a_formula_names_its_file_and_key(tmp_path: Path) -> None:
    formulas = tmp_path / "formulas"
    shutil.copytree(FORMULAS, formulas)
    meta = formulas / "keepalived" / "formula.yml"
    meta.write_text(meta.read_text().replace("[NET_ADMIN, NET_RAW]", "[NET_ADMIN, RAW]"))
    with pytest.raises(LocatedError) as caught:
        FormulaSet([str(formulas)])
    msg = str(caught.value)
    assert "keepalived/formula.yml" in msg and "services.keepalived.capabilities" in msg
    assert "'RAW' is not a Linux capability" in msg


# -- the compose document ---------------------------------------------------------------


def test_keepalived_runs_in_each_proxy_nodes_namespace_with_its_capabilities() -> None:
    stack = stack_of()
    svc = stack.plan.document["services"]
    assert stack.plan.subnet == "10.50.0.0/24"
    for node in ("prx01", "prx02"):
        keepalived = svc[f"keepalived-{node}"]
        assert keepalived["network_mode"] == f"service:{node}"
        assert keepalived["cap_add"] == ["NET_ADMIN", "NET_RAW"]
        assert keepalived["healthcheck"]["test"][1:4] == [
            "saline-entrypoint",
            "with-pillar",
            "keepalived:cluster",
        ]
        # haproxy, its neighbour, gets nothing more than the defaults.
        assert "cap_add" not in svc[f"haproxy-{node}"]
    # keepalived waits for nothing: its track script follows haproxy.
    assert stack.plan.step("keepalived-prx01").after == ("prx01",)


def test_the_vip_model_passes_the_checks_and_the_example_has_no_virtual_address() -> None:
    stack_of()
    example = example_stack(STATE_PLACEHOLDER)
    assert not any(s.spec.vrrp for n in example.plan.nodes for s in n.services)
    assert all("cap_add" not in c for c in example.plan.document["services"].values())


# -- keepalived.conf ---------------------------------------------------------------------


def rendered_conf(model: Path | str = VIP) -> dict[str, str]:
    """Each node's keepalived.conf, rendered by Salt from the formula's template."""
    out = {}
    for node, configs in render_nodes(load_model(str(model)), SHIPPED).items():
        for sc in configs:
            if sc.service.name == "keepalived":
                out[node.split(".")[0]] = next(f.content for f in sc.files if f.path == CONF)
    return out


def block(conf: str, head: str) -> str:
    """The text of ``head { ... }`` (one level of nested braces)."""
    found = re.search(re.escape(head) + r" \{\n((?:[^{}]|\{[^{}]*\})*)\}", conf)
    assert found, f"no {head} block in:\n{conf}"
    return found.group(1)


def words(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_keepalived_conf_unicast_to_the_other_member_with_a_track_script() -> None:
    confs = rendered_conf()
    assert sorted(confs) == ["prx01", "prx02"]
    one = block(confs["prx01"], "vrrp_instance VIP")
    assert block(one, "unicast_peer").split() == ["10.50.0.12"]
    assert block(block(confs["prx02"], "vrrp_instance VIP"), "unicast_peer").split() == [
        "10.50.0.11"
    ]
    assert "unicast_src_ip 10.50.0.11" in words(one)
    assert block(one, "virtual_ipaddress").split() == ["10.50.0.50"]
    assert block(one, "track_script").split() == ["check_haproxy"]
    assert block(one, "authentication").split() == ["auth_type", "PASS", "auth_pass", "vip-pass"]
    for line in ("state BACKUP", "nopreempt", "interface eth0", "virtual_router_id 50"):
        assert line in words(one)
    assert "priority 250" in words(one)
    assert "priority 240" in words(block(confs["prx02"], "vrrp_instance VIP"))
    assert "notify /usr/local/lib/saline/keepalived-notify" in words(one)
    check = block(confs["prx01"], "vrrp_script check_haproxy")
    assert words(check) == [
        'script "/usr/local/lib/saline/keepalived-check-http http://127.0.0.1:8404/healthz"',
        "interval 1",
        "timeout 1",
        "fall 1",
        "rise 2",
    ]
    glob = words(block(confs["prx01"], "global_defs"))
    assert glob == ["script_user keepalived_script", "enable_script_security"]


def test_keepalived_conf_multicast_statuses_weights_and_preemption(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    edit(model, INSTANCE_CLASS, "          unicast_src_ip: ${_param:single_address}\n", "")
    edit(
        model,
        INSTANCE_CLASS,
        "          unicast_peer:\n"
        "            - ${_param:cluster_node01_address}\n"
        "            - ${_param:cluster_node02_address}\n"
        "          track_script: check_haproxy\n",
        "          nopreempt: false\n          track_script: {check_haproxy: {weight: -20}}\n",
    )
    edit(
        model,
        INSTANCE_CLASS,
        "          http: http://127.0.0.1:8404/healthz\n",
        "          http: http://127.0.0.1:8404/healthz\n          status: [200]\n"
        "          interval: 2\n          weight: -30\n",
    )
    conf = rendered_conf(model)["prx01"]
    instance = block(conf, "vrrp_instance VIP")
    assert "unicast_peer" not in instance and "unicast_src_ip" not in instance
    assert "nopreempt" not in words(instance)
    assert block(instance, "track_script").split() == ["check_haproxy", "weight", "-20"]
    check = words(block(conf, "vrrp_script check_haproxy"))
    assert check[0].endswith('keepalived-check-http http://127.0.0.1:8404/healthz 200"')
    assert "interval 2" in check and "weight -30" in check


# -- the model's checks ------------------------------------------------------------------


def test_a_virtual_address_outside_the_stacks_network(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    edit(model, "classes/cluster/vip/init.yml", "10.50.0.50", "10.51.0.50")
    msg = str(error(model))
    # Where the instance's address is set (the class that refers to the parameter).
    assert msg.startswith(
        at(model, INSTANCE_CLASS, " address:", "keepalived:cluster:instance:VIP:address", "prx01")
    ), msg
    assert "virtual address 10.51.0.50 is outside the stack's network 10.50.0.0/24" in msg


def test_a_virtual_address_that_is_a_nodes_own(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"address": "10.50.0.11"}})
    msg = str(error(model))
    assert msg.startswith(
        at(model, PRX02, "address: 10.50.0.11", "keepalived:cluster:instance:VIP:address")
    ), msg
    assert "virtual address 10.50.0.11 is the address of node prx01.vip.local" in msg


def test_a_virtual_address_that_is_the_gateway_or_no_host(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"address": "10.50.0.1"}})
    assert "virtual address 10.50.0.1 is the stack network's gateway" in str(error(model))
    override(model, PRX02, {"VIP": {"address": "10.50.0.255"}})
    assert "10.50.0.255 is not a host address of 10.50.0.0/24" in str(error(model))


@pytest.mark.parametrize("bad", ["10.50.0.300", "10.50.0.50/24", "vip.local", 1234])
def test_a_virtual_address_that_is_no_ipv4_address(tmp_path: Path, bad: object) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"address": bad}})
    msg = str(error(model))
    assert msg.startswith(at(model, PRX02, " address:", "keepalived:cluster:instance:VIP:address"))
    assert f"{bad!r} is not an IPv4 address" in msg


def test_addresses_lists_are_checked_too(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"addresses": ["10.50.0.50", "10.50.0.12"]}})
    msg = str(error(model))
    assert "key parameters:keepalived:cluster:instance:VIP:addresses" in msg
    assert "10.50.0.12 is the address of node prx02.vip.local" in msg


def test_members_with_different_router_ids(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"virtual_router_id": 51}})
    msg = str(error(model))
    assert msg.startswith(
        at(
            model,
            PRX02,
            "virtual_router_id: 51",
            "keepalived:cluster:instance:VIP:virtual_router_id",
        )
    ), msg
    first = f"{INSTANCE_CLASS}:{line_of(model, INSTANCE_CLASS, 'virtual_router_id:')}"
    assert f"virtual_router_id is 50 on prx01.vip.local ({first}) and 51 on prx02" in msg


def test_members_with_different_addresses(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"address": "10.50.0.51"}})
    msg = str(error(model))
    assert msg.startswith(
        at(model, PRX02, "address: 10.50.0.51", "keepalived:cluster:instance:VIP:address")
    ), msg
    assert "its address is 10.50.0.50 on prx01.vip.local" in msg
    assert "and 10.50.0.51 on prx02.vip.local" in msg


@pytest.mark.parametrize("vrid", [0, 256, "50", True])
def test_a_router_id_out_of_range(tmp_path: Path, vrid: object) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"virtual_router_id": vrid}})
    msg = str(error(model))
    assert "virtual_router_id must be a whole number from 1 to 255" in msg
    assert "key parameters:keepalived:cluster:instance:VIP:virtual_router_id" in msg


def test_unicast_peers_must_be_the_other_members(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"~unicast_peer": ["10.50.0.12"]}})
    msg = str(error(model))
    assert msg.startswith(
        at(model, PRX02, "unicast_peer:", "keepalived:cluster:instance:VIP:unicast_peer")
    ), msg
    assert "does not list 10.50.0.11, the address of prx01.vip.local" in msg
    override(model, PRX02, {"VIP": {"~unicast_peer": ["10.50.0.11", "10.50.0.13"]}})
    assert "unicast peer 10.50.0.13 is no other node holding instance VIP" in str(error(model))
    override(model, PRX02, {"VIP": {"~unicast_peer": ["10.50.0.11", "ten"]}})
    assert "unicast peer 'ten' is not an IPv4 address" in str(error(model))


def test_unicast_and_multicast_members_never_hear_each_other(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"~unicast_peer": None, "unicast_src_ip": None}})
    msg = str(error(model))
    assert "prx01.vip.local sends its advertisements to unicast peers" in msg
    assert "prx02.vip.local to the multicast group" in msg


def test_a_unicast_source_that_is_not_the_node(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    override(model, PRX02, {"VIP": {"unicast_src_ip": "10.50.0.11"}})
    msg = str(error(model))
    assert msg.startswith(
        at(model, PRX02, "unicast_src_ip:", "keepalived:cluster:instance:VIP:unicast_src_ip")
    ), msg
    assert "unicast_src_ip '10.50.0.11' is not the node's address 10.50.0.12" in msg
    # Its own address among the peers, without unicast_src_ip to leave it out.
    override(model, PRX02, {"VIP": {"unicast_src_ip": None}})
    assert "unicast_peer lists the node's own address 10.50.0.12" in str(error(model))


def test_two_instances_with_one_router_id_or_one_address(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    second = {"address": "10.50.0.60", "virtual_router_id": 50, "interface": "eth0"}
    for rel in ("nodes/prx01.vip.local.yml", PRX02):
        override(model, rel, {"VIP2": second})
    msg = str(error(model))
    assert "VRRP instances VIP and VIP2 both use virtual_router_id 50" in msg
    assert "key parameters:keepalived:cluster:instance:VIP2:virtual_router_id" in msg
    for rel in ("nodes/prx01.vip.local.yml", PRX02):
        override(model, rel, {"VIP2": {**second, "virtual_router_id": 60, "address": "10.50.0.50"}})
    assert "VRRP instances VIP and VIP2 both hold 10.50.0.50" in str(error(model))


def test_a_disabled_instance_is_not_checked_and_no_instance_is_an_error(tmp_path: Path) -> None:
    model = vip_copy(tmp_path)
    bad = {"address": "192.168.1.1", "virtual_router_id": 9, "enabled": False}
    for rel in ("nodes/prx01.vip.local.yml", PRX02):
        override(model, rel, {"OLD": bad})
    stack_of(model)
    edit(model, INSTANCE_CLASS, "      instance:\n        VIP:", "      instances:\n        VIP:")
    for rel in ("nodes/prx01.vip.local.yml", PRX02):
        path = model / rel
        data = yaml.safe_load(path.read_text())
        del data["parameters"]["keepalived"]
        path.write_text(yaml.safe_dump(data))
    msg = str(error(model))
    assert "keepalived on prx01.vip.local holds no virtual address" in msg
    assert "keepalived:cluster:instance must map instance names" in msg


def test_the_checks_without_a_model_name_node_and_key() -> None:
    """check_virtual_addresses on its own (no file to point at: the node and key)."""
    stack = stack_of()
    services = {n.name: n.services for n in stack.plan.nodes}
    addresses = {n.name: n.address for n in stack.plan.nodes}
    pillars: dict[str, Any] = {n: dict(p) for n, p in stack.pillars.items()}
    net = ipaddress.IPv4Network("10.50.0.0/24")
    check_virtual_addresses(services, pillars, addresses, net)
    with pytest.raises(ModelError) as caught:
        check_virtual_addresses(services, pillars, addresses, ipaddress.IPv4Network("10.50.0.0/28"))
    assert str(caught.value).startswith(
        "node prx01.vip.local, key parameters:keepalived:cluster:instance:VIP:address: "
        "virtual address 10.50.0.50 is outside"
    )


# -- Kubernetes ------------------------------------------------------------------------


def test_kubernetes_refuses_a_virtual_address_naming_the_service() -> None:
    release, pillars = release_of(VIP)
    specs = {name: spec for name, (_, spec) in SHIPPED.services.items()}
    with pytest.raises(ModelError) as caught:
        kubernetes_manifests(release, pillars, specs, KubeOptions())
    msg = str(caught.value)
    assert msg.startswith(
        "node prx01.vip.local, key keepalived:cluster:enabled: service keepalived"
    )
    assert "holds a virtual address (VRRP, keepalived:cluster:instance)" in msg
    assert "on prx01.vip.local, prx02.vip.local" in msg
    assert "a Service is its equivalent" in msg


def test_kubernetes_adds_a_formulas_capabilities_to_its_container() -> None:
    release, pillars = release_of(VIP)
    specs = {name: spec for name, (_, spec) in SHIPPED.services.items()}
    # keepalived left out of the release: haproxy alone, with a capability for the test.
    release = replace(
        release, instances=tuple(i for i in release.instances if i.service != "keepalived")
    )
    specs["haproxy"] = specs["haproxy"].model_copy(update={"capabilities": ["NET_BIND_SERVICE"]})
    objects = kubernetes_manifests(release, pillars, specs, KubeOptions())
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"] == {"capabilities": {"add": ["NET_BIND_SERVICE"]}}


# -- the formula's scripts ---------------------------------------------------------------

FILES = FORMULAS / "keepalived" / "files"
CLUSTER = {
    "enabled": True,
    "instance": {
        "VIP": {
            "address": "10.50.0.50",
            "interface": "eth0",
            "virtual_router_id": 50,
            "password": "s3cret-pw",
        },
        "OLD": {"address": "10.50.0.60", "virtual_router_id": 60, "enabled": False},
    },
}


def state_check(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    states: dict[str, str],
    held: list[str],
    *args: str,
    pillar: str | None = None,
) -> tuple[int, str]:
    """keepalived-state.py in process: the notify script's files in a folder of its own,
    an ``ip`` on PATH that shows ``held`` on eth0, the pillar on stdin."""
    spec = importlib.util.spec_from_file_location("keepalived_state", FILES / "state.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path / "state"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, state in states.items():
        (folder / name).write_text(f"{state}\n")
    monkeypatch.setattr(module, "STATE_DIR", str(folder))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lines = ["2: eth0    inet 10.50.0.11/24 brd 10.50.0.255 scope global eth0"]
    lines += [f"2: eth0    inet {a}/32 scope global eth0" for a in held]
    fake = bin_dir / "ip"
    fake.write_text(
        '#!/bin/sh\n[ "$*" = "-4 -o addr show dev eth0" ] || exit 1\n'
        + "".join(f"echo '{line}'\n" for line in lines)
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(
        sys, "stdin", io.StringIO(json.dumps(CLUSTER) if pillar is None else pillar)
    )
    code = module.main(["keepalived-state.py", *args])
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out
    return int(code), out.strip()


def test_the_state_check_tells_who_holds_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def check(states: dict[str, str], held: list[str], *args: str) -> tuple[int, str]:
        return state_check(tmp_path, monkeypatch, capsys, states, held, *args)

    assert check({"VIP": "MASTER"}, ["10.50.0.50"]) == (
        0,
        "VIP: MASTER, holds 10.50.0.50 on eth0",
    )
    assert check({"VIP": "BACKUP"}, []) == (0, "VIP: BACKUP, 10.50.0.50 is held elsewhere")
    # A failing track script; no state yet; a master without its address; a backup with it.
    assert check({"VIP": "FAULT"}, []) == (1, "VIP: FAULT, holds none of 10.50.0.50 on eth0")
    assert check({}, []) == (1, "VIP: UNKNOWN, holds none of 10.50.0.50 on eth0")
    assert check({"VIP": "MASTER"}, []) == (1, "VIP: MASTER, holds none of 10.50.0.50 on eth0")
    assert check({"VIP": "BACKUP"}, ["10.50.0.50"]) == (1, "VIP: BACKUP, holds 10.50.0.50 on eth0")
    code, out = check({"VIP": "MASTER"}, ["10.50.0.50"], "--json")
    assert code == 0
    assert json.loads(out) == {
        "VIP": {
            "state": "MASTER",
            "addresses": ["10.50.0.50"],
            "interface": "eth0",
            "holds": ["10.50.0.50"],
        }
    }


def test_the_status_view_says_who_holds_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = state_check(
        tmp_path, monkeypatch, capsys, {"VIP": "MASTER"}, ["10.50.0.50"], "--status"
    )
    view = json.loads(out)
    assert code == 0
    assert view["healthy"] is True and view["state"] == "MASTER"
    assert view["holds"] == ["10.50.0.50"]
    assert view["summary"] == "VIP: MASTER, holds 10.50.0.50 on eth0"
    code, out = state_check(tmp_path, monkeypatch, capsys, {"VIP": "FAULT"}, [], "--status")
    view = json.loads(out)
    assert code == 1 and view["healthy"] is False and view["state"] == "FAULT"
    assert view["holds"] == []


def test_the_state_check_without_a_pillar_or_an_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = state_check(tmp_path, monkeypatch, capsys, {}, [], pillar="{not json")
    assert code == 2 and out.startswith("keepalived: no pillar")
    code, out = state_check(tmp_path, monkeypatch, capsys, {}, [], pillar='{"instance": {}}')
    assert code == 1 and "no VRRP instance" in out


@pytest.fixture(scope="module")
def http_server() -> Iterator[int]:
    """A local HTTP server: 200 at /healthz, 503 anywhere else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


def check_http(*args: str) -> int:
    done = subprocess.run(
        ["bash", str(FILES / "check_http.sh"), *args], capture_output=True, timeout=30
    )
    return done.returncode


def test_the_track_script_wants_an_http_answer(http_server: int) -> None:
    base = f"http://127.0.0.1:{http_server}"
    assert check_http(f"{base}/healthz") == 0
    # Any answer counts (haproxy's health frontend says 503 while an API is down) ...
    assert check_http(f"{base}/down") == 0
    # ... unless statuses are given.
    assert check_http(f"{base}/down", "200") == 1
    assert check_http(f"{base}/healthz", "204", "200") == 0
    # Nothing listening: a failure, at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert check_http(f"http://127.0.0.1:{closed}/healthz") == 1

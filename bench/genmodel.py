"""Generate an OpenStack-style reclass model of any size, for benchmarks.

Shape (like the salt-formulas cookiecutter models operators run):

* ``classes/system/<service>/<role>.yml``: one class per service role, each with a
  nested pillar of 40-70 values, most deployment values as ``${_param:...}`` references;
* ``classes/cluster/<name>/init.yml``: a shared ``_param`` dict of several hundred keys,
  many of them references to each other, and a class-name reference
  (``system.linux.repo.${_param:linux_repo_flavor}``);
* ``classes/cluster/<name>/openstack/<role>.yml``: roles that include system classes;
* ``nodes/<name>.yml``: a role class plus a few node values (address, hostname, ...).

About 600 parameter values per node. Deterministic for a given size.

Usage: python bench/genmodel.py NODES OUTDIR
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import yaml

SERVICES = {
    "linux": ["system", "network", "storage"],
    "ntp": ["client"],
    "openssh": ["server"],
    "salt": ["minion"],
    "keystone": ["server", "client"],
    "glance": ["server"],
    "nova": ["controller", "compute"],
    "neutron": ["server", "gateway", "compute"],
    "cinder": ["controller", "volume"],
    "heat": ["server"],
    "horizon": ["server"],
    "rabbitmq": ["server", "cluster"],
    "galera": ["master", "slave"],
    "memcached": ["server"],
    "haproxy": ["proxy"],
    "keepalived": ["cluster"],
    "apache": ["server"],
    "fluentd": ["agent"],
    "prometheus": ["exporter"],
    "telegraf": ["agent"],
}

ROLES = {
    "control": [
        ("keystone", "server"),
        ("keystone", "client"),
        ("glance", "server"),
        ("nova", "controller"),
        ("neutron", "server"),
        ("cinder", "controller"),
        ("heat", "server"),
        ("horizon", "server"),
        ("memcached", "server"),
        ("apache", "server"),
        ("keepalived", "cluster"),
        ("haproxy", "proxy"),
    ],
    "database": [("galera", "master"), ("galera", "slave"), ("keepalived", "cluster")],
    "message_queue": [("rabbitmq", "server"), ("rabbitmq", "cluster")],
    "proxy": [("haproxy", "proxy"), ("keepalived", "cluster"), ("apache", "server")],
    "compute": [("nova", "compute"), ("neutron", "compute"), ("cinder", "volume")],
    "gateway": [("neutron", "gateway")],
}
COMMON = [
    ("linux", "system"),
    ("linux", "network"),
    ("linux", "storage"),
    ("ntp", "client"),
    ("openssh", "server"),
    ("salt", "minion"),
    ("fluentd", "agent"),
    ("prometheus", "exporter"),
    ("telegraf", "agent"),
]

N_PARAMS = 250


def _param_names() -> list[str]:
    return [f"param_{i:03d}" for i in range(N_PARAMS)]


def _service_class(rng: random.Random, service: str, role: str) -> dict[str, Any]:
    params = _param_names()
    body: dict[str, Any] = {"enabled": True, "version": "${_param:openstack_version}"}
    for s in range(rng.randint(2, 4)):
        section: dict[str, Any] = {}
        for k in range(rng.randint(5, 9)):
            r = rng.random()
            key = f"opt_{s}_{k}"
            if r < 0.45:
                section[key] = "${_param:" + rng.choice(params) + "}"
            elif r < 0.6:
                section[key] = (
                    "http://${_param:"
                    + rng.choice(params)
                    + "}:${_param:"
                    + rng.choice(params)
                    + "}/v3"
                )
            elif r < 0.7:
                section[key] = [f"item{j}" for j in range(rng.randint(1, 4))]
            elif r < 0.8:
                section[key] = rng.randint(1, 65535)
            else:
                section[key] = f"value-{rng.randint(0, 999)}"
        body[f"section_{s}"] = section
    body["database"] = {
        "engine": "mysql",
        "host": "${_param:openstack_database_address}",
        "port": 3306,
        "name": service,
        "user": service,
        "password": "${_param:" + service + "_db_password}",
    }
    body["bind"] = {"address": "${_param:single_address}", "port": rng.randint(1000, 9999)}
    return {"parameters": {service: {role: body}}}


def _cluster_init(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {
        "openstack_version": "zed",
        "cluster_domain": "deploy.local",
        "cluster_vip": "10.0.0.10",
        "openstack_database_address": "${_param:cluster_vip}",
        "openstack_control_address": "${_param:cluster_vip}",
        "single_address": "127.0.0.1",
        "hostname": "unknown",
    }
    for svc in SERVICES:
        params[f"{svc}_db_password"] = f"secret-{svc}-{rng.randint(0, 99999)}"
    names = _param_names()
    for i, name in enumerate(names):
        r = rng.random()
        if r < 0.35 and i > 0:
            params[name] = "${_param:" + names[rng.randint(0, i - 1)] + "}"
        elif r < 0.45:
            params[name] = "${_param:cluster_domain}-" + name
        elif r < 0.6:
            params[name] = rng.randint(0, 100000)
        else:
            params[name] = f"v-{name}-{rng.randint(0, 999)}"
    return {
        "classes": [
            "cluster.deploy.defaults",
            *[f"system.{s}.{r}" for s, r in COMMON],
            # A class-name reference: resolved from what earlier classes set.
            "system.linux.repo.${_param:linux_repo_flavor}",
        ],
        "parameters": {
            "_param": params,
            "linux": {
                "system": {"domain": "${_param:cluster_domain}", "name": "${_param:hostname}"}
            },
        },
    }


def generate(nodes: int, out: str, seed: int = 7) -> None:
    rng = random.Random(seed)

    def write(rel: str, data: dict[str, Any]) -> None:
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)

    for service, roles in SERVICES.items():
        for role in roles:
            write(f"classes/system/{service}/{role}.yml", _service_class(rng, service, role))
    write(
        "classes/system/linux/repo/main.yml",
        {
            "parameters": {
                "linux": {
                    "system": {
                        "repo": {
                            "main": {
                                "source": "deb http://deb.debian.org/debian "
                                "${_param:linux_system_codename} main"
                            }
                        }
                    }
                }
            }
        },
    )
    write(
        "classes/cluster/deploy/defaults.yml",
        {"parameters": {"_param": {"linux_repo_flavor": "main"}}},
    )
    write("classes/cluster/deploy/init.yml", _cluster_init(rng))
    for role, services in ROLES.items():
        write(
            f"classes/cluster/deploy/openstack/{role}.yml",
            {
                "classes": ["cluster.deploy", *[f"system.{s}.{r}" for s, r in services]],
                "parameters": {"_param": {"node_role": role}},
            },
        )
    fixed = {"control": 3, "database": 3, "message_queue": 3, "proxy": 2, "gateway": 2}
    plan: list[tuple[str, str]] = []
    for role, count in fixed.items():
        plan += [(f"{role[:3]}{i:02d}", role) for i in range(1, count + 1)]
    i = 1
    while len(plan) < nodes:
        plan.append((f"cmp{i:05d}", "compute"))
        i += 1
    for n, (name, role) in enumerate(plan[:nodes]):
        write(
            f"nodes/{name}.deploy.local.yml",
            {
                "classes": [f"cluster.deploy.openstack.{role}"],
                "parameters": {
                    "_param": {
                        "single_address": f"10.{1 + n // 65025}.{(n // 255) % 255}.{1 + n % 255}",
                        "hostname": name,
                        "linux_system_codename": "bookworm",
                    },
                    "linux": {
                        "network": {
                            "interface": {
                                "ens3": {
                                    "enabled": True,
                                    "type": "eth",
                                    "address": "${_param:single_address}",
                                    "netmask": "255.255.0.0",
                                }
                            }
                        }
                    },
                },
            },
        )


if __name__ == "__main__":
    generate(int(sys.argv[1]), sys.argv[2])

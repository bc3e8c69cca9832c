"""Generate a reclass model of another shape than genmodel.py, for benchmarks.

genmodel.py's nodes share a handful of roles and one big ``_param`` dict. Here:

* many small classes in deep chains: ``classes/feature/fNN/lK.yml`` (K = 0..5) each
  includes ``lK-1`` (and ``l0`` includes ``common.base``), 40 features, 240 classes of
  about 10 values;
* every node picks its own set of features, each at its own depth, and a site
  (``classes/site/sNN.yml``): almost no two nodes have the same class list, so nothing of
  the class expansion is shared between nodes;
* many references per node, most of them to the node's own values (address, rack,
  hostname, index) or through other references (``${fNN:l1:url}`` built from
  ``${_param:...}``), so nearly every resolved string differs from node to node;
* lists extended at every level of a chain, scalars overridden further down.

About 700 parameter values and 350 references per node. Deterministic for a given size.

Usage: python bench/genmodel_deep.py NODES OUTDIR
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import yaml

FEATURES = 40
LEVELS = 6
SITES = 10
#: How many features a node has, and the deepest level it may pick.
PER_NODE = (10, 16)


def _level_class(
    rng: random.Random, f: int, level: int, strings: list[list[str]]
) -> dict[str, Any]:
    """Class ``feature.fNN.lK``; ``strings``: per lower level, its keys with string values
    (what references inside strings may name: reclass and saline put lists into strings
    differently)."""
    name = f"f{f:02d}"
    own: dict[str, Any] = {}
    for k in range(rng.randint(7, 11)):
        r = rng.random()
        key = f"opt_{k}"
        if r < 0.3:
            own[key] = "${_param:" + rng.choice(_NODE_PARAMS) + "}"
        elif r < 0.5:
            own[key] = (
                "${_param:hostname}-"
                + name
                + f"-{level}-{k}.${{_param:site_domain}}:${{_param:node_index}}"
            )
        elif r < 0.65 and level > 0:
            lower = rng.randrange(level)
            own[key] = "${" + f"{name}:l{lower}:{rng.choice(strings[lower])}" + "}/sub"
        elif r < 0.75:
            own[key] = rng.randint(0, 65535)
        elif r < 0.85:
            own[key] = [f"{name}-item{j}" for j in range(rng.randint(1, 3))]
        else:
            own[key] = f"{name}-value-{rng.randint(0, 999)}"
    strings.append([k for k, v in own.items() if isinstance(v, str)] + ["url"])
    own["url"] = (
        f"https://${{_param:address}}:{8000 + f}/{name}/l{level}/${{_param:rack}}/"
        "${_param:hostname}"
    )
    params: dict[str, Any] = {
        name: {
            f"l{level}": own,
            "common": {"port": 8000 + f + level, "level": level},
            "packages": [f"{name}-pkg-l{level}"],
        }
    }
    if level == 0:
        params[name]["common"]["endpoint"] = "${" + name + ":l0:url}"
    if level >= 2:
        params[name]["common"]["upstream"] = "${" + f"{name}:l{level - 1}:url" + "}"
    parent = "common.base" if level == 0 else f"feature.{name}.l{level - 1}"
    return {"classes": [parent], "parameters": params}


_NODE_PARAMS = ["address", "rack", "hostname", "node_index", "site_domain", "dns", "ntp"]


def generate(nodes: int, out: str, seed: int = 11) -> None:
    rng = random.Random(seed)

    def write(rel: str, data: dict[str, Any]) -> None:
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)

    write(
        "classes/common/base.yml",
        {
            "parameters": {
                "_param": {
                    "site_domain": "unset.local",
                    "dns": "${_param:site_gateway}",
                    "ntp": "ntp.${_param:site_domain}",
                    "site_gateway": "10.0.0.1",
                },
                "common": {
                    "fqdn": "${_param:hostname}.${_param:site_domain}",
                    "address": "${_param:address}",
                    "location": "${_param:rack}@${_param:site_domain}",
                },
            }
        },
    )
    for s in range(SITES):
        write(
            f"classes/site/s{s:02d}.yml",
            {
                "parameters": {
                    "_param": {
                        "site_domain": f"site{s:02d}.example.net",
                        "site_gateway": f"10.{s}.0.1",
                    }
                }
            },
        )
    for f in range(FEATURES):
        strings: list[list[str]] = []
        for level in range(LEVELS):
            write(f"classes/feature/f{f:02d}/l{level}.yml", _level_class(rng, f, level, strings))
    for n in range(nodes):
        name = f"n{n:05d}"
        picked = rng.sample(range(FEATURES), rng.randint(*PER_NODE))
        classes = ["common.base", f"site.s{rng.randrange(SITES):02d}"]
        classes += [f"feature.f{f:02d}.l{rng.randint(2, LEVELS - 1)}" for f in picked]
        write(
            f"nodes/{name}.example.net.yml",
            {
                "classes": classes,
                "parameters": {
                    "_param": {
                        "hostname": name,
                        "node_index": n,
                        "address": f"10.{1 + n // 65025}.{(n // 255) % 255}.{1 + n % 255}",
                        "rack": f"rack{n // 40:03d}",
                    },
                    "node": {"role": f"role{n % 7}", "id": n, "peer": "${common:fqdn}"},
                },
            },
        )


if __name__ == "__main__":
    generate(int(sys.argv[1]), sys.argv[2])

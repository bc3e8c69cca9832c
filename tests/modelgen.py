"""Seeded random reclass models for differential tests against kapicorp-reclass.

Each model exercises, at random: class includes (nested folders, init.yml, relative
names), deep merges of dicts, lists and scalars, references (whole values, inside
strings, nested, to dicts and lists that later values merge into, escaped), ``~``
overrides, ``=`` constants, applications with ``~`` removal, environments, exports and
inventory queries, class-name references, and occasional mistakes (missing references,
type conflicts, loops) on which both engines must fail.
"""

from __future__ import annotations

import os
import random
from typing import Any

import yaml

PARAMS = [f"p{i}" for i in range(8)]
SERVICES = [f"s{i}" for i in range(4)]
LEAVES = [f"l{i}" for i in range(4)]


class Gen:
    def __init__(self, rng: random.Random, mistakes: bool) -> None:
        self.rng = rng
        self.mistakes = mistakes
        # Inside a ~override: no references to lists there. kapicorp-reclass appends to
        # such a list in place and then renders it twice (doubled items); saline does not.
        self.in_override = False

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def scalar(self) -> Any:
        r = self.rng
        return r.choice([r.randint(0, 99), f"v{r.randint(0, 9)}", True, False, None, 1.5, "a b"])

    def ref(self, scalar: bool = False) -> str:
        """A reference; ``scalar``: only to scalar values (kapicorp-reclass cannot put a
        dict or list inside a string: it prints its internal objects)."""
        r = self.rng
        if self.mistakes and self.chance(0.004):
            return "${_param:nope}"
        kind = r.random()
        if kind < 0.7:
            return "${_param:" + r.choice(PARAMS) + "}"
        if kind < 0.85:
            return "${_param:${_param:pname}}"
        if kind < 0.9:
            leaves = ["l0", "l1"] if scalar else LEAVES
            return "${svc:" + r.choice(SERVICES) + ":" + r.choice(leaves) + "}"
        return "${_reclass_:name:short}"

    def leaf(self, name: str = "l0", depth: int = 0) -> Any:
        """A value for leaf ``name``: l0/l1 scalars or strings, l2 lists, l3 dicts."""
        r = self.rng
        if self.mistakes and name in ("l2", "l3") and self.chance(0.01):
            name = "l3" if name == "l2" else "l2"  # occasionally the wrong type: a conflict
        if name == "l2":
            if self.chance(0.15) and not self.in_override:
                return "${_param:lst}"
            return [
                self.scalar() if self.chance(0.7) else self.ref() for _ in range(r.randint(0, 3))
            ]
        if name == "l3":
            if self.chance(0.15):
                return "${_param:dct}"
            if depth < 1:
                return {
                    k: self.leaf(k if k != "l3" else "l0", depth + 1) for k in r.sample(LEAVES, 2)
                }
            return {"x": self.scalar()}
        k = r.random()
        if k < 0.35:
            return self.scalar()
        if k < 0.55:
            return self.ref(scalar=True)
        if k < 0.7:
            return f"x-{self.ref(scalar=True)}-{r.randint(0, 9)}"
        if k < 0.8:
            return "esc \\${not_a_ref} " + r.choice(["", self.ref(scalar=True)])
        return self.scalar()

    def params(self, include_base: bool) -> dict[str, Any]:
        r = self.rng
        p: dict[str, Any] = {}
        if include_base:
            p["_param"] = {name: self.scalar() for name in PARAMS}
            p["_param"]["pname"] = r.choice(PARAMS)
            p["_param"]["lst"] = [1, 2]
            p["_param"]["dct"] = {"a": 1, "b": {"c": 2}}
            p["_param"]["=const"] = "fixed"
            p["svc"] = {s: {leaf: self.leaf(leaf) for leaf in LEAVES} for s in SERVICES}
            return p
        if self.chance(0.7):
            p["_param"] = {}
            for name in r.sample(PARAMS, r.randint(1, 3)):
                p["_param"][name] = self.scalar() if self.chance(0.6) else self.ref_to_lower(name)
            if self.mistakes and self.chance(0.03):
                p["_param"]["=const"] = self.scalar()  # the base sets it too: a changed constant
        if self.chance(0.8):
            svc: dict[str, Any] = {}
            for s in r.sample(SERVICES, r.randint(1, 3)):
                override = self.chance(0.1)
                self.in_override = override
                body = {leaf: self.leaf(leaf) for leaf in r.sample(LEAVES, r.randint(1, 3))}
                self.in_override = False
                key = ("~" + s) if override else s
                svc[key] = body
            p["svc"] = svc
        if self.chance(0.4):
            p["lst"] = [self.scalar() if self.chance(0.6) else self.ref() for _ in range(2)]
        if self.chance(0.3):
            p["copy"] = r.choice(["${svc:s0}", "${_param:dct}"])
        if self.chance(0.2):
            p["copyl"] = "${_param:lst}" if self.chance(0.5) else ["${_param:p1}", 3]
        if self.chance(0.2):
            p["copy"] = {"extra": self.leaf()}
        if self.chance(0.15):
            p["~over"] = {"a": self.leaf()} if self.chance(0.9) else self.scalar()
        elif self.chance(0.15):
            p["over"] = {"b": self.leaf("l1")}
        if self.mistakes and self.chance(0.01):
            p["svc"] = "scalar-over-dict"
        if self.mistakes and self.chance(0.01):
            p["loop1"] = "${loop2}"
            p["loop2"] = "${loop1}"
        return p

    def ref_to_lower(self, name: str) -> Any:
        i = PARAMS.index(name)
        if i == 0:
            return self.scalar()
        return "${_param:" + PARAMS[self.rng.randint(0, i - 1)] + "}"


def _write(root: str, rel: str, data: dict[str, Any]) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


def random_model(seed: int, root: str, mistakes: bool = True) -> None:
    """Write a random model to ``root`` (classes/, nodes/)."""
    rng = random.Random(seed)
    g = Gen(rng, mistakes)
    n_classes = rng.randint(3, 9)
    names: list[str] = []
    groups = ["", "grp", "grp.sub"]
    files: dict[str, str] = {}
    for i in range(n_classes):
        grp = rng.choice(groups)
        name = f"{grp}.c{i}" if grp else f"c{i}"
        use_init = grp != "" and g.chance(0.3)
        rel = name.replace(".", "/") + ("/init.yml" if use_init else ".yml")
        names.append(name)
        files[name] = rel
    _write(root, "classes/common.yml", {"parameters": g.params(True), "applications": ["base"]})
    for i, name in enumerate(names):
        data: dict[str, Any] = {}
        includes = [names[j] for j in rng.sample(range(i), min(i, rng.randint(0, 2)))] if i else []
        grp = name.rsplit(".", 1)[0] if "." in name else ""
        rel_includes = []
        for inc in includes:
            inc_grp = inc.rsplit(".", 1)[0] if "." in inc else ""
            is_init = files[name].endswith("init.yml")
            if inc_grp == grp and grp and not is_init and g.chance(0.5):
                rel_includes.append("." + inc.rsplit(".", 1)[1])
            else:
                rel_includes.append(inc)
        if g.mistakes and g.chance(0.01) and i:
            rel_includes.append(name)  # a class including itself: a loop
        if rel_includes:
            data["classes"] = rel_includes
        if g.chance(0.5):
            apps = [f"app{rng.randint(0, 4)}" for _ in range(rng.randint(1, 2))]
            if g.chance(0.3):
                apps.append(f"~app{rng.randint(0, 4)}")
            data["applications"] = apps
        data["parameters"] = g.params(False)
        if g.chance(0.3):
            data["exports"] = {"role": name, "addr": "${_param:p1}"}
        if g.chance(0.15):
            data["parameters"]["peers"] = rng.choice(
                [
                    "$[ exports:role ]",
                    "$[ if exports:role == " + rng.choice(names) + " ]",
                    "$[ exports:addr if exports:role == self:_param:p2 ]",
                ]
            )
        _write(root, "classes/" + files[name], data)
    use_flavor = g.chance(0.3)
    if use_flavor:
        _write(root, "classes/flavor/v1.yml", {"parameters": {"flavor_set": 1}})
        with open(os.path.join(root, "classes/common.yml")) as fh:
            common: dict[str, Any] = yaml.safe_load(fh)
        common["parameters"]["_param"]["flavor"] = "v1"
        _write(root, "classes/common.yml", common)
    for n in range(rng.randint(2, 5)):
        classes = ["common", *rng.sample(names, rng.randint(1, min(3, len(names))))]
        if use_flavor and g.chance(0.5):
            classes.append("flavor.${_param:flavor}")
        node: dict[str, Any] = {"classes": classes, "parameters": g.params(False)}
        if g.chance(0.2):
            node["environment"] = rng.choice(["base", "prod"])
        if g.chance(0.3):
            node["applications"] = [f"~app{rng.randint(0, 4)}"]
        if g.chance(0.5):
            node["exports"] = {"ip": f"10.0.0.{n}", "role": "node"}
        _write(root, f"nodes/n{n}.yml", node)

"""Benchmark: rendering config files, the new path against the old one.

* **new**: ``configs.render_nodes``: one Salt session per call (Salt's import, options,
  grains and file client set up once), one HighState per node rendering all its services,
  the node's compiled pillar given in memory, and the render cache (no Salt at all for a
  node whose inputs did not change);
* **old** (the reference): ``salt.runner.render_files`` once per service, a Salt minion
  each whose ext_pillar compiles the model again; no cache.

Measured, each run in a fresh process (a planner is a fresh ``saline`` process), timing
the render call inside it (the model is loaded and every node compiled beforehand, timed
apart: the planner needs that anyway):

1. the example (examples/openstack with the shipped formulas, copied): every node,
   old; new cold (an empty cache); new warm (the cache from a cold run); and a one-value
   change (keystone's token expiration on one controller) on a warm cache;
2. a generated model of ``--nodes`` nodes: bench/genmodel.py's "wide" model (about 600
   parameter values per node) under the example's classes, its nodes controllers
   (keystone, glance-api) behind the example's haproxy, so the proxy's pillar lists every
   controller. Cold render of every node once (it fills the cache, timed once); then a
   one-value change on one node (a different value each run, so each is a real miss) on
   the warm cache; the old path on a sample of nodes, extrapolated to the model (without a
   cache, a plan must render every node), and on the changed node alone (a lower bound:
   a planner that somehow knew which node changed).

Ratios are new/old from the medians of ``--runs`` runs.

Usage: python bench/render.py [--nodes 1000] [--runs 3] [--sample 3]
Results are printed and written to bench/out/render.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
sys.path.insert(0, HERE)

EXAMPLE = os.path.join(REPO, "examples", "openstack")
FORMULAS = os.path.join(REPO, "formulas")
#: The controller role class of the example, and the generated model's role its extra
#: controllers take their bulk from.
CONTROL_CLASS = "cluster.openstack.control"
GEN_ROLE = "gen.cluster.deploy.openstack.compute"


# -- measured work (run inside a worker subprocess) ------------------------------------------


def _load(root: str, formulas: str) -> tuple[Any, Any, float]:
    from saline.formulas import FormulaSet
    from saline.model import load_model

    t = time.perf_counter()
    model = load_model(root)
    for n in model.node_names():
        model.node(n)
    return model, FormulaSet([formulas]), time.perf_counter() - t


def work_new(root: str, formulas: str, cache_dir: str) -> dict[str, Any]:
    """``render_nodes`` over every node (with the cache in ``cache_dir``, or none)."""
    from saline import configs
    from saline.salt.runner import RenderSession

    model, fs, compile_s = _load(root, formulas)
    counts = {"sessions": 0, "nodes": 0}

    class Counted(RenderSession):
        def __init__(self, *a: Any, **k: Any) -> None:
            counts["sessions"] += 1
            super().__init__(*a, **k)

        def render(self, *a: Any, **k: Any) -> Any:
            counts["nodes"] += 1
            return super().render(*a, **k)

    setattr(configs, "RenderSession", Counted)  # noqa: B010 (counts the Salt work done)
    salt_before = "salt" in sys.modules
    t, cpu = time.perf_counter(), time.process_time()
    out = configs.render_nodes(model, fs, cache_dir=cache_dir or None)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    files = sum(len(sc.files) for scs in out.values() for sc in scs)
    digest = _digest({n: [(sc.service.name, sc.files) for sc in scs] for n, scs in out.items()})
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "compile_seconds": compile_s,
        "nodes": len(out),
        "files": files,
        "rendered_nodes": counts["nodes"],
        "sessions": counts["sessions"],
        "salt_imported": not salt_before and "salt" in sys.modules,
        "digest": digest,
    }


def work_old(root: str, formulas: str, nodes: str) -> dict[str, Any]:
    """``render_files`` per service of each node in ``nodes`` (comma-separated; empty:
    every node that runs a service)."""
    from saline.configs import node_services
    from saline.salt.runner import render_files

    model, fs, compile_s = _load(root, formulas)
    names = nodes.split(",") if nodes else model.node_names()
    t, cpu = time.perf_counter(), time.process_time()
    out = {}
    for n in names:
        services = node_services(model, fs, n)
        if not services:
            continue
        out[n] = [
            (
                s.name,
                render_files(n, model.root, fs.dirs, s.spec.configure) if s.spec.configure else [],
            )
            for s in services
        ]
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "compile_seconds": compile_s,
        "nodes": len(out),
        "files": sum(len(f) for scs in out.values() for _, f in scs),
        "digest": _digest(out),
    }


def _digest(data: Any) -> str:
    def default(o: Any) -> Any:
        return o.__dict__

    return hashlib.sha256(json.dumps(data, default=default).encode()).hexdigest()[:16]


def work_generate(size: str, root: str) -> dict[str, Any]:
    generate(int(size), root)
    return {}


WORK: dict[str, Callable[..., dict[str, Any]]] = {
    "new": work_new,
    "old": work_old,
    "generate": work_generate,
}


# -- models --------------------------------------------------------------------------------


def copy_example(dst: str) -> str:
    shutil.copytree(EXAMPLE, os.path.join(dst, "model"))
    shutil.copytree(FORMULAS, os.path.join(dst, "formulas"))
    return dst


def _prefix_classes(path: str) -> None:
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if data.get("classes"):
        data["classes"] = ["gen." + c for c in data["classes"]]
        with open(path, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)


def generate(nodes: int, root: str) -> None:
    """The example's classes and nodes, plus controllers up to ``nodes`` nodes, each also
    taking genmodel's compute role (under ``classes/gen/``) for a realistic pillar."""
    import genmodel

    copy_example(root)
    model = os.path.join(root, "model")
    with tempfile.TemporaryDirectory() as tmp:
        genmodel.generate(20, tmp)  # its classes (its nodes are not used)
        shutil.copytree(os.path.join(tmp, "classes"), os.path.join(model, "classes", "gen"))
    for d, _, files in os.walk(os.path.join(model, "classes", "gen")):
        for f in files:
            _prefix_classes(os.path.join(d, f))
    have = len(os.listdir(os.path.join(model, "nodes")))
    for i in range(1, nodes - have + 1):
        name = f"ctl{i + 100:05d}"
        node = {
            "classes": [GEN_ROLE, CONTROL_CLASS],
            "parameters": {
                "_param": {
                    "hostname": name,
                    "linux_system_codename": "bookworm",
                    "single_address": f"10.{20 + i // 65025}.{(i // 255) % 255}.{1 + i % 255}",
                }
            },
        }
        with open(os.path.join(model, "nodes", f"{name}.openstack.local.yml"), "w") as fh:
            yaml.safe_dump(node, fh, sort_keys=False)


def change_one_value(root: str, node: str, value: int) -> None:
    """keystone's token expiration on ``node`` only (a node-level parameter)."""
    path = os.path.join(root, "model", "nodes", f"{node}.yml")
    with open(path) as fh:
        data = yaml.safe_load(fh)
    params = data.setdefault("parameters", {})
    params.setdefault("keystone", {}).setdefault("server", {}).setdefault("tokens", {})[
        "expiration"
    ] = value
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


# -- driver ----------------------------------------------------------------------------------


def worker(mode: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", mode, *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SALINE_")},
    )
    if done.returncode:
        raise RuntimeError(f"worker {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return float(statistics.median(r[key] for r in runs))


def summary(runs: list[dict[str, Any]], ref: dict[str, float] | None = None) -> dict[str, Any]:
    """Medians of wall and CPU time (the machine may be shared: CPU time is the steadier),
    and their ratios to ``ref``'s."""
    out: dict[str, Any] = {"seconds": median(runs), "cpu_seconds": median(runs, "cpu_seconds")}
    if ref:
        out["ratio"] = out["seconds"] / ref["seconds"]
        out["cpu_ratio"] = out["cpu_seconds"] / ref["cpu_seconds"]
    return out


def bench_example(work: str, runs: int) -> dict[str, Any]:
    root = copy_example(os.path.join(work, "example"))
    model, formulas = os.path.join(root, "model"), os.path.join(root, "formulas")
    old = [worker("old", model, formulas, "") for _ in range(runs)]
    cold = []
    for i in range(runs):
        cold.append(worker("new", model, formulas, os.path.join(work, f"example-cache-{i}")))
    warm_cache = os.path.join(work, "example-cache-0")
    warm = [worker("new", model, formulas, warm_cache) for _ in range(runs)]
    assert len({r["digest"] for r in old + cold + warm}) == 1, "outputs differ"
    assert all(r["rendered_nodes"] == 0 and not r["salt_imported"] for r in warm)
    node = next(n for n in sorted(os.listdir(os.path.join(model, "nodes"))) if "ctl" in n)
    node = node.removesuffix(".yml")
    change = []
    for i in range(runs):
        change_one_value(root, node, 7200 + i)
        change.append(worker("new", model, formulas, warm_cache))
    assert all(r["rendered_nodes"] == 1 for r in change)
    ref = summary(old)
    return {
        "nodes": old[0]["nodes"],
        "files": old[0]["files"],
        "compile_seconds": median(cold, "compile_seconds"),
        "changed_node": node,
        "summary": {
            "old": ref,
            "new_cold": summary(cold, ref),
            "new_warm": summary(warm, ref),
            "new_one_change": summary(change, ref),
        },
        "runs": {"old": old, "cold": cold, "warm": warm, "one_change": change},
    }


def bench_generated(work: str, nodes: int, runs: int, sample: int) -> dict[str, Any]:
    root = os.path.join(work, f"generated-{nodes}")
    worker("generate", str(nodes), root)
    model, formulas = os.path.join(root, "model"), os.path.join(root, "formulas")
    cache = os.path.join(work, f"generated-{nodes}-cache")
    cold = worker("new", model, formulas, cache)
    warm = worker("new", model, formulas, cache)
    names = sorted(f.removesuffix(".yml") for f in os.listdir(os.path.join(model, "nodes")))
    controllers = [n for n in names if n.startswith("ctl")]
    node = controllers[len(controllers) // 2]
    change = []
    for i in range(runs):
        change_one_value(root, node, 7200 + i)
        change.append(worker("new", model, formulas, cache))
    picked = [controllers[(k * len(controllers)) // sample] for k in range(sample)]
    old_sample = [worker("old", model, formulas, n) for n in picked]
    old_changed = [worker("old", model, formulas, node) for _ in range(runs)]
    per_node = summary(old_sample)
    old_all = {k: v * cold["nodes"] for k, v in per_node.items()}
    return {
        "nodes": cold["nodes"],
        "files": cold["files"],
        "compile_seconds": median(change, "compile_seconds"),
        "changed_node": node,
        "one_change_rendered": [r["rendered_nodes"] for r in change],
        "summary": {
            "old_per_node": per_node,
            "old_every_node_extrapolated": old_all,
            "old_changed_node": summary(old_changed),
            "new_cold_once": summary([cold], old_all),
            "new_warm_once": summary([warm], old_all),
            "new_one_change": summary(change, old_all),
            "new_one_change_vs_old_changed_node": summary(change, summary(old_changed)),
        },
        "runs": {
            "cold": cold,
            "warm": warm,
            "one_change": change,
            "old_sample": old_sample,
            "old_changed_node": old_changed,
        },
    }


def _line(name: str, s: dict[str, Any], what: str = "") -> str:
    text = f"  {name:<26} {s['seconds']:9.3f} s {s['cpu_seconds']:9.3f} s cpu"
    if "ratio" in s:
        text += f"   x{s['ratio']:.4f} (cpu x{s['cpu_ratio']:.4f})"
    return text + (f"  {what}" if what else "")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, default=1000, help="generated model's size (0: skip)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each measure (median)")
    ap.add_argument("--sample", type=int, default=3, help="nodes the old path renders (1000)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        mode, *rest = args.worker
        print(json.dumps(WORK[mode](*rest)), file=sys.stderr)
        return 0

    os.makedirs(OUT, exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="saline-bench-render-") as work:
        ex = bench_example(work, args.runs)
        results["example"] = ex
        e = ex["summary"]
        print(
            f"example: {ex['nodes']} nodes, {ex['files']} files "
            f"(compiling them: {ex['compile_seconds']:.2f} s); medians of {args.runs}",
            _line("old path (reference)", e["old"]),
            _line("new, cold (no cache)", e["new_cold"]),
            _line("new, warm (cache)", e["new_warm"]),
            _line("new, one value changed", e["new_one_change"], ex["changed_node"]),
            sep="\n",
            flush=True,
        )
        if args.nodes:
            g = bench_generated(work, args.nodes, args.runs, args.sample)
            results["generated"] = g
            s = g["summary"]
            print(
                f"generated: {g['nodes']} nodes, {g['files']} files "
                f"(compiling them: {g['compile_seconds']:.2f} s)",
                _line("old path, per node", s["old_per_node"], f"median of {args.sample}"),
                _line("old path, every node", s["old_every_node_extrapolated"], "extrapolated"),
                _line("old path, the changed node", s["old_changed_node"]),
                _line("new, cold (once)", s["new_cold_once"]),
                _line("new, warm (once)", s["new_warm_once"]),
                _line(
                    "new, one value changed",
                    s["new_one_change"],
                    f"rendered nodes {g['one_change_rendered']}",
                ),
                _line("  vs old, changed node only", s["new_one_change_vs_old_changed_node"]),
                sep="\n",
                flush=True,
            )
    results["load_after"] = os.getloadavg()
    with open(os.path.join(OUT, "render.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

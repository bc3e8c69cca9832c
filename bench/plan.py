"""Benchmark: `saline plan` of a one-value change, on the example and on a big model.

For each model (the example; the example grown to N controller nodes), in a temporary git
repository: commit the model, change one value (keystone's token expiration on one
controller node), then time the whole command ``saline plan --from HEAD`` (a fresh
process, wall time, median of --runs after one warm-up run that fills the render cache
and keeps HEAD's release, see saline.lifecycle.revisions).

Targets (issue 10): under 2 s on the example, under 5 s on 1000 nodes. Beside it, the
floor: compiling the same model once (``saline model inventory --format json``), since a
plan compiles the model at both revisions; and the cold first run (empty render cache).

Usage: python bench/plan.py [--nodes 1000] [--runs 3]
Results are printed and written to bench/out/plan.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "openstack"
SALINE = [sys.executable, "-m", "saline.cli"]
OUT = REPO / "bench" / "out" / "plan.json"


def sh(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if done.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return took


def make_model(root: Path, extra_nodes: int) -> Path:
    model = root / "model"
    shutil.copytree(EXAMPLE, model)
    for i in range(extra_nodes):
        name = f"ctl{i + 100:04d}"
        address = f"10.11.{i // 250}.{i % 250 + 2}"
        (model / "nodes" / f"{name}.openstack.local.yml").write_text(
            "classes:\n  - cluster.openstack.control\nparameters:\n  _param:\n"
            f"    hostname: {name}\n    single_address: {address}\n"
        )
    git = ["git", "-c", "user.email=bench@saline", "-c", "user.name=bench"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "model"], cwd=root, check=True)
    # One value on one node: ctl01's keystone token expiration.
    node = model / "nodes" / "ctl01.openstack.local.yml"
    node.write_text(
        node.read_text() + "  keystone:\n    server:\n      tokens:\n        expiration: 7200\n"
    )
    return model


def measure(label: str, extra: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="saline-bench-plan-") as tmp:
        root = Path(tmp)
        model = make_model(root, extra)
        env = {
            **os.environ,
            "SALINE_CACHE_DIR": str(root / "cache"),
            "SALINE_STATE_DIR": str(root / "state"),
            "NO_COLOR": "1",
        }
        plan = [*SALINE, "plan", "--model", str(model), "--from", "HEAD"]
        plan += ["--formulas", str(REPO / "formulas"), "--detailed-exitcode"]
        cold = sh(plan, root, env)
        warm = [sh(plan, root, env) for _ in range(runs)]
        inventory = [*SALINE, "model", "inventory", "--model", str(model), "--format", "json"]
        floor = [sh(inventory, root, env) for _ in range(runs)]
        nodes = len(list((model / "nodes").glob("*.yml")))
        w, f = statistics.median(warm), statistics.median(floor)
        return {
            "model": label,
            "nodes": nodes,
            "plan_cold_s": round(cold, 2),
            "plan_s": round(w, 2),
            "compile_floor_s": round(f, 2),
            "plan_over_floor": round(w / f, 2),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000, help="size of the big model")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    results = [measure("example", 0, args.runs)]
    if args.nodes:
        results.append(measure(f"example+{args.nodes}", args.nodes - 5, args.runs))
    print(f"{'model':<18}{'nodes':>6}{'cold':>8}{'plan':>8}{'floor':>8}{'ratio':>8}")
    for r in results:
        print(
            f"{r['model']:<18}{r['nodes']:>6}{r['plan_cold_s']:>8}{r['plan_s']:>8}"
            f"{r['compile_floor_s']:>8}{r['plan_over_floor']:>8}"
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

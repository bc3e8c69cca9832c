"""Benchmark: saline's model engine against kapicorp-reclass, side by side in one run.

For each model size it generates an OpenStack-style model (bench/genmodel.py) and
measures, each in a fresh subprocess so that peak memory is that run's own:

* whole inventory to JSON: saline and kapicorp-reclass (time, peak RSS), and the ratio;
* the floor: just parsing every YAML file of the model and dumping the inventory JSON;
* one node (``model show``): in-process compile time of one node from a cold start
  (imports excluded), and the whole command's wall time, saline vs ``reclass --nodeinfo``.

It also checks that both engines produced the same parameters for every node.

Usage: python bench/model_engine.py [--sizes 100,1000,5000] [--reference-max 1000]
Results are printed as a table and written to bench/out/model_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
sys.path.insert(0, HERE)


# -- measured work (run inside a worker subprocess) ------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def work_saline_inventory(root: str, out: str) -> dict[str, Any]:
    t = time.perf_counter()
    from saline.model import load_model

    text = json.dumps(load_model(root).inventory())
    seconds = time.perf_counter() - t
    with open(out, "w") as fh:
        fh.write(text)
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def work_reference_inventory(root: str, out: str) -> dict[str, Any]:
    t = time.perf_counter()
    import reclass
    from reclass.core import Core
    from reclass.settings import Settings

    storage = reclass.get_storage("yaml_fs", f"{root}/nodes", f"{root}/classes", False)
    inv = Core(storage, None, Settings({})).inventory()
    text = json.dumps(inv, default=str)
    seconds = time.perf_counter() - t
    with open(out, "w") as fh:
        fh.write(text)
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def work_floor(root: str, inventory_json: str) -> dict[str, Any]:
    import yaml

    with open(inventory_json) as fh:
        data = json.load(fh)
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    t = time.perf_counter()
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith((".yml", ".yaml")):
                with open(os.path.join(d, f), "rb") as fh:
                    yaml.load(fh, Loader=loader)
    json.dumps(data)
    return {"seconds": time.perf_counter() - t, "peak_mb": _peak_mb()}


def work_saline_show(root: str, node: str) -> dict[str, Any]:
    from saline.model import load_model

    t = time.perf_counter()
    json.dumps(load_model(root).node(node).as_dict())
    return {"seconds": time.perf_counter() - t, "peak_mb": _peak_mb()}


def work_reference_show(root: str, node: str) -> dict[str, Any]:
    import reclass
    from reclass.core import Core
    from reclass.settings import Settings

    t = time.perf_counter()
    storage = reclass.get_storage("yaml_fs", f"{root}/nodes", f"{root}/classes", False)
    json.dumps(Core(storage, None, Settings({})).nodeinfo(node), default=str)
    return {"seconds": time.perf_counter() - t, "peak_mb": _peak_mb()}


WORK = {
    "saline-inventory": work_saline_inventory,
    "reference-inventory": work_reference_inventory,
    "floor": work_floor,
    "saline-show": work_saline_show,
    "reference-show": work_reference_show,
}


# -- driver ----------------------------------------------------------------------------------


# saline's prepared-file cache: off for "cold" runs, a private folder for "warm" ones.
COLD = {"SALINE_NO_CACHE": "1"}
WARM = {"SALINE_CACHE_DIR": os.path.join(OUT, "cache")}


def run_worker(mode: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", mode, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or COLD)},
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or COLD)},
    )
    return time.perf_counter() - t


def same_parameters(a_path: str, b_path: str) -> tuple[int, int]:
    with open(a_path) as fh:
        a = json.load(fh)["nodes"]
    with open(b_path) as fh:
        b = json.load(fh)["nodes"]
    same = sum(1 for n in a if n in b and a[n]["parameters"] == b[n]["parameters"])
    return same, len(a)


def ensure_model(size: int) -> str:
    from genmodel import generate

    root = os.path.join(OUT, f"model-{size}")
    stamp = os.path.join(root, ".complete")
    if not os.path.exists(stamp):
        subprocess.run(["rm", "-rf", root], check=True)
        generate(size, root)
        open(stamp, "w").close()
        time.sleep(2.5)  # files younger than 2 s are never cached (see saline.model.cache)
    return root


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument(
        "--reference-max", type=int, default=1000, help="largest size to run the reference on"
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        mode, *rest = args.worker
        print(json.dumps(WORK[mode](*rest)))
        return 0

    os.makedirs(OUT, exist_ok=True)
    bindir = os.path.dirname(sys.executable)
    results: list[dict[str, Any]] = []
    print(
        f"{'nodes':>6} {'saline s':>9} {'ref s':>8} {'ratio':>7} {'saline MB':>10} {'ref MB':>7} "
        f"{'floor s':>8} {'x floor':>8} {'same':>10}"
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        root = ensure_model(size)
        row: dict[str, Any] = {"nodes": size}
        ours_json = os.path.join(OUT, f"saline-{size}.json")
        row["saline"] = run_worker("saline-inventory", root, ours_json)
        row["floor"] = run_worker("floor", root, ours_json)
        if size <= args.reference_max:
            ref_json = os.path.join(OUT, f"reference-{size}.json")
            row["reference"] = run_worker("reference-inventory", root, ref_json)
            row["ratio"] = row["reference"]["seconds"] / row["saline"]["seconds"]
            row["memory_ratio"] = row["saline"]["peak_mb"] / row["reference"]["peak_mb"]
            row["same_parameters"] = same_parameters(ours_json, ref_json)
            os.remove(ref_json)
        os.remove(ours_json)
        ref = row.get("reference", {})
        same = row.get("same_parameters")
        print(
            f"{size:>6} {row['saline']['seconds']:>9.2f} {ref.get('seconds', float('nan')):>8.2f} "
            f"{row.get('ratio', float('nan')):>7.1f} {row['saline']['peak_mb']:>10.0f} "
            f"{ref.get('peak_mb', float('nan')):>7.0f} {row['floor']['seconds']:>8.2f} "
            f"{row['saline']['seconds'] / row['floor']['seconds']:>8.1f} "
            f"{f'{same[0]}/{same[1]}' if same else '-':>10}",
            flush=True,
        )
        # With a warm cache (a second run on unchanged files).
        warm_json = os.path.join(OUT, f"saline-warm-{size}.json")
        run_worker("saline-inventory", root, warm_json, env=WARM)
        row["saline_warm"] = run_worker("saline-inventory", root, warm_json, env=WARM)
        os.remove(warm_json)
        print(f"       warm cache: saline {row['saline_warm']['seconds']:.2f} s", flush=True)
        if size <= args.reference_max and size >= 1000:
            node = "cmp00001.deploy.local"
            saline_cli = [
                os.path.join(bindir, "saline"),
                "model",
                "show",
                node,
                "--model",
                root,
                "--format",
                "json",
            ]
            show: dict[str, Any] = {
                "saline": run_worker("saline-show", root, node),
                "saline_warm": run_worker("saline-show", root, node, env=WARM),
                "reference": run_worker("reference-show", root, node),
                "saline_cli_s": wall(saline_cli),
                "saline_cli_warm_s": wall(saline_cli, WARM),
                "reference_cli_s": wall(
                    [os.path.join(bindir, "reclass"), "-b", root, "--nodeinfo", node, "-o", "json"]
                ),
            }
            ref_s = show["reference"]["seconds"]
            show["ratio"] = ref_s / show["saline"]["seconds"]
            show["ratio_warm"] = ref_s / show["saline_warm"]["seconds"]
            show["cli_ratio"] = show["reference_cli_s"] / show["saline_cli_s"]
            row["show_one_node"] = show
            print(
                f"       model show {node}: reference nodeinfo {ref_s * 1000:.0f} ms; "
                f"saline {show['saline']['seconds'] * 1000:.1f} ms cold "
                f"(ratio {show['ratio']:.1f}), "
                f"{show['saline_warm']['seconds'] * 1000:.1f} ms warm "
                f"(ratio {show['ratio_warm']:.1f}); whole command "
                f"{show['saline_cli_s']:.3f} s cold, {show['saline_cli_warm_s']:.3f} s warm "
                f"vs {show['reference_cli_s']:.3f} s (ratio {show['cli_ratio']:.1f} cold)",
                flush=True,
            )
        results.append(row)
    with open(os.path.join(OUT, "model_engine.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: saline's model engine against kapicorp-reclass, side by side in one run.

For each model shape and size it generates a model (bench/genmodel.py: "wide", nodes
sharing a few roles and one big ``_param`` dict; bench/genmodel_deep.py: "deep", many
small classes in deep chains, a class list per node, many references to node values) and
measures, each run a fresh process timed from outside (wall time, peak RSS of that process
alone, by wait4):

* the whole command ``saline model inventory --model M --format json`` (start, imports,
  compile, output) with the file cache off ("cold"), and with a warm cache (files
  unchanged since the last run);
* kapicorp-reclass on the same model: its Python API (``Core.inventory()``) and compact
  ``json.dumps`` to a file, in a fresh interpreter: reclass's fastest and leanest way to
  the same data (its own ``reclass --inventory -o json`` pretty-prints with Python's pure
  encoder: slower, and bigger; measured too with ``--reference-cli``);
* the ratios (saline / reclass: time, target at most 0.1; peak memory, target at most
  1.5), from the medians of ``--runs`` runs, saline's and reclass's runs interleaved;
* the floor: parsing every YAML file of the model and dumping the inventory as JSON;
* one node (sizes >= 1000): ``saline model show`` cold and warm, against
  ``reclass --nodeinfo``, whole commands; and the in-process compile time of one node.

It also checks that both engines produced the same parameters for every node.

Usage: python bench/model_engine.py [--sizes 1000] [--models wide,deep] [--runs 3]
           [--reference-max 1000] [--reference-cli] [--saline CMD]
Results are printed as a table and written to bench/out/model_engine.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
sys.path.insert(0, HERE)

#: The model generators, by shape.
GENERATORS = {"wide": "genmodel", "deep": "genmodel_deep"}
#: A node of each shape for ``model show``.
SHOW_NODE = {"wide": "cmp00001.deploy.local", "deep": "n00001.example.net"}


# -- measured work (run inside a worker subprocess) ------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def work_reference_inventory(root: str, out: str) -> dict[str, Any]:
    import reclass
    from reclass.core import Core
    from reclass.settings import Settings

    storage = reclass.get_storage("yaml_fs", f"{root}/nodes", f"{root}/classes", False)
    inv = Core(storage, None, Settings({})).inventory()
    text = json.dumps(inv, default=str)
    with open(out, "w") as fh:
        fh.write(text)
    return {"peak_mb": _peak_mb()}


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


def work_saline_show(root: str, node: str, cache_dir: str = "") -> dict[str, Any]:
    from saline.model import load_model
    from saline.model.cache import FileCache

    t = time.perf_counter()
    cache = FileCache(cache_dir) if cache_dir else None
    json.dumps(load_model(root, cache=cache).node(node).as_dict())
    return {"seconds": time.perf_counter() - t, "peak_mb": _peak_mb()}


def work_reference_show(root: str, node: str) -> dict[str, Any]:
    import reclass
    from reclass.core import Core
    from reclass.settings import Settings

    t = time.perf_counter()
    storage = reclass.get_storage("yaml_fs", f"{root}/nodes", f"{root}/classes", False)
    json.dumps(Core(storage, None, Settings({})).nodeinfo(node), default=str)
    return {"seconds": time.perf_counter() - t, "peak_mb": _peak_mb()}


def work_compare(a_path: str, b_path: str) -> dict[str, Any]:
    """How many nodes have the same parameters in both inventories."""
    with open(a_path) as fh:
        a = json.load(fh)["nodes"]
    with open(b_path) as fh:
        b = json.load(fh)["nodes"]
    same = sum(1 for n in a if n in b and a[n]["parameters"] == b[n]["parameters"])
    return {"same": same, "nodes": len(a)}


def work_generate(kind: str, size: str, root: str) -> dict[str, Any]:
    __import__(GENERATORS[kind]).generate(int(size), root)
    return {}


WORK: dict[str, Callable[..., dict[str, Any]]] = {
    "compare": work_compare,
    "generate": work_generate,
    "reference-inventory": work_reference_inventory,
    "floor": work_floor,
    "saline-show": work_saline_show,
    "reference-show": work_reference_show,
}


# -- driver ----------------------------------------------------------------------------------

# The driver stays small: it does no work of its own (generating, comparing: workers). A
# child's peak RSS (ru_maxrss) is at least what its parent's was when it was started:
# Linux counts the parent's memory, copied by fork, before exec replaces it.

# saline's prepared-file cache (the CLI reads these variables): off for "cold" runs, a
# private folder for "warm" ones.
CACHE_DIR = os.path.join(OUT, "cache")
COLD = {"SALINE_NO_CACHE": "1"}
WARM = {"SALINE_CACHE_DIR": CACHE_DIR}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SALINE_NO_CACHE", "SALINE_CACHE_DIR")}
    return {**env, **extra}


def run(cmd: list[str], env: dict[str, str], stdout: str | None = None) -> dict[str, Any]:
    """Run ``cmd`` (stdout to the file ``stdout``); its wall time and its own peak RSS."""
    with (
        open(stdout or os.devnull, "wb") as out,
        tempfile.TemporaryFile() as err,
    ):
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env(env))
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(
                f"{shlex.join(cmd)} failed ({proc.returncode}): "
                f"{err.read().decode(errors='replace')[-2000:]}"
            )
        err.seek(0)
        worker_out = err.read().decode(errors="replace")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "stderr": worker_out}


def run_worker(mode: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A worker subprocess: what it reports (on stderr, stdout being free for data), with
    the process's wall time and peak RSS measured from outside."""
    outside = run([sys.executable, __file__, "--worker", mode, *args], env or COLD)
    result: dict[str, Any] = json.loads(outside.pop("stderr").strip().splitlines()[-1])
    return {**outside, **{f"inside_{k}": v for k, v in result.items()}}


def ensure_model(kind: str, size: int) -> str:
    """The model of that shape and size, generated unless the same generator made it."""
    with open(os.path.join(HERE, f"{GENERATORS[kind]}.py"), "rb") as fh:
        version = hashlib.sha256(fh.read()).hexdigest()
    root = os.path.join(OUT, f"model-{kind}-{size}")
    stamp = os.path.join(root, ".complete")
    try:
        with open(stamp) as fh:
            if fh.read() == version:
                return root
    except OSError:
        pass
    shutil.rmtree(root, ignore_errors=True)
    run_worker("generate", kind, str(size), root)
    with open(stamp, "w") as fh:
        fh.write(version)
    time.sleep(2.5)  # files younger than 2 s are never cached (see saline.model.cache)
    return root


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seconds": _median(runs, "seconds"),
        "peak_mb": _median(runs, "peak_mb"),
        "runs": [{k: v for k, v in r.items() if k != "stderr"} for r in runs],
    }


def bench_inventory(
    kind: str, size: int, args: argparse.Namespace, saline: list[str]
) -> dict[str, Any]:
    root = ensure_model(kind, size)
    row: dict[str, Any] = {"model": kind, "nodes": size}
    ours_json = os.path.join(OUT, f"saline-{kind}-{size}.json")
    ref_json = os.path.join(OUT, f"reference-{kind}-{size}.json")
    cmd = [*saline, "model", "inventory", "--model", root, "--format", "json"]
    with_reference = size <= args.reference_max
    cold: list[dict[str, Any]] = []
    ref: list[dict[str, Any]] = []
    for _ in range(args.runs):
        cold.append(run(cmd, COLD, ours_json))
        if with_reference:
            ref.append(run_worker("reference-inventory", root, ref_json))
    row["saline"] = _summary(cold)
    run(cmd, WARM, ours_json)  # fills the cache
    row["saline_warm"] = _summary([run(cmd, WARM, ours_json) for _ in range(args.runs)])
    row["floor"] = run_worker("floor", root, ours_json)
    if with_reference:
        row["reference"] = _summary(ref)
        row["ratio"] = row["saline"]["seconds"] / row["reference"]["seconds"]
        row["ratio_warm"] = row["saline_warm"]["seconds"] / row["reference"]["seconds"]
        row["memory_ratio"] = row["saline"]["peak_mb"] / row["reference"]["peak_mb"]
        same = run_worker("compare", ours_json, ref_json)
        row["same_parameters"] = (same["inside_same"], same["inside_nodes"])
        if args.reference_cli:
            reclass = os.path.join(os.path.dirname(sys.executable), "reclass")
            ref_cmd = [reclass, "-b", root, "--inventory", "-o", "json"]
            row["reference_cli"] = _summary(
                [run(ref_cmd, COLD, ref_json) for _ in range(args.runs)]
            )
            row["ratio_cli"] = row["saline"]["seconds"] / row["reference_cli"]["seconds"]
            row["memory_ratio_cli"] = row["saline"]["peak_mb"] / row["reference_cli"]["peak_mb"]
        os.remove(ref_json)
    os.remove(ours_json)
    return row


def bench_show(kind: str, size: int, saline: list[str]) -> dict[str, Any]:
    root = ensure_model(kind, size)
    node = SHOW_NODE[kind]
    cmd = [*saline, "model", "show", node, "--model", root, "--format", "json"]
    reclass = os.path.join(os.path.dirname(sys.executable), "reclass")
    warm_files = os.path.join(CACHE_DIR, "model-files")  # where the CLI keeps them
    show: dict[str, Any] = {
        "node": node,
        "compile_s": run_worker("saline-show", root, node)["inside_seconds"],
        "compile_warm_s": run_worker("saline-show", root, node, warm_files)["inside_seconds"],
        "reference_nodeinfo_s": run_worker("reference-show", root, node)["inside_seconds"],
        "saline_cli_s": run(cmd, COLD)["seconds"],
        "saline_cli_warm_s": run(cmd, WARM)["seconds"],
        "reference_cli_s": run([reclass, "-b", root, "--nodeinfo", node, "-o", "json"], COLD)[
            "seconds"
        ],
    }
    show["cli_ratio"] = show["saline_cli_s"] / show["reference_cli_s"]
    show["cli_ratio_warm"] = show["saline_cli_warm_s"] / show["reference_cli_s"]
    return show


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1000", help="node counts (comma-separated)")
    ap.add_argument("--models", default="wide,deep", help="model shapes: wide, deep")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    ap.add_argument(
        "--reference-max", type=int, default=1000, help="largest size to run the reference on"
    )
    ap.add_argument(
        "--reference-cli",
        action="store_true",
        help="also time reclass's own command (reclass --inventory -o json)",
    )
    ap.add_argument(
        "--saline",
        default=os.path.join(os.path.dirname(sys.executable), "saline"),
        help="the saline command to measure (default: this venv's)",
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        mode, *rest = args.worker
        print(json.dumps(WORK[mode](*rest)), file=sys.stderr)
        return 0

    os.makedirs(OUT, exist_ok=True)
    saline = shlex.split(args.saline)
    results: dict[str, Any] = {
        "command": [*saline, "model", "inventory", "--model", "M", "--format", "json"],
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "rows": [],
    }
    print(
        f"{'model':>5} {'nodes':>6} {'saline s':>9} {'ref s':>8} {'x ref':>6} "
        f"{'saline MB':>10} {'ref MB':>7} {'x ref':>6} {'warm s':>7} {'x ref':>6} "
        f"{'floor s':>8} {'same':>10}",
        flush=True,
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        for kind in args.models.split(","):
            row = bench_inventory(kind, size, args, saline)
            ref = row.get("reference", {})
            same = row.get("same_parameters")
            print(
                f"{kind:>5} {size:>6} {row['saline']['seconds']:>9.2f} "
                f"{_fmt(ref.get('seconds'), '8.2f'):>8} {_fmt(row.get('ratio'), '6.3f'):>6} "
                f"{row['saline']['peak_mb']:>10.0f} {_fmt(ref.get('peak_mb'), '7.0f'):>7} "
                f"{_fmt(row.get('memory_ratio'), '6.2f'):>6} "
                f"{row['saline_warm']['seconds']:>7.2f} {_fmt(row.get('ratio_warm'), '6.3f'):>6} "
                f"{row['floor']['inside_seconds']:>8.2f} "
                f"{f'{same[0]}/{same[1]}' if same else '-':>10}",
                flush=True,
            )
            if "reference_cli" in row:
                cli = row["reference_cli"]
                print(
                    f"       reclass --inventory -o json: {cli['seconds']:.2f} s, "
                    f"{cli['peak_mb']:.0f} MB (saline: {row['ratio_cli']:.3f}x the time, "
                    f"{row['memory_ratio_cli']:.2f}x the memory)",
                    flush=True,
                )
            if 1000 <= size <= args.reference_max:
                show = row["show_one_node"] = bench_show(kind, size, saline)
                print(
                    f"       model show {show['node']}: {show['saline_cli_s']:.2f} s cold, "
                    f"{show['saline_cli_warm_s']:.2f} s warm; reclass --nodeinfo "
                    f"{show['reference_cli_s']:.2f} s (x ref {show['cli_ratio']:.3f} cold, "
                    f"{show['cli_ratio_warm']:.3f} warm); in process: compile "
                    f"{show['compile_s'] * 1000:.0f} ms cold, "
                    f"{show['compile_warm_s'] * 1000:.0f} ms warm, reference nodeinfo "
                    f"{show['reference_nodeinfo_s'] * 1000:.0f} ms",
                    flush=True,
                )
            results["rows"].append(row)
    results["load_after"] = os.getloadavg()
    # No measured peak is meaningful below this (see the note above run()).
    results["driver_peak_mb"] = _peak_mb()
    print(f"(the driver's own peak RSS, a floor for every figure: {_peak_mb():.0f} MB)")
    with open(os.path.join(OUT, "model_engine.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""rabbitmq's API check (formula.yml api_check), in the node's container. Standard
library only; the rabbitmq pillar (its secrets merged) comes as JSON on stdin
(`saline-entrypoint with-pillar rabbitmq`), though nothing secret is used or printed.

Every node: its listeners accept connections (rabbitmq-diagnostics
check_port_connectivity). A member of a cluster (rabbitmq:cluster:enabled) must also see
the cluster whole, which is what a rolling change waits for before it touches the next
member:
- every member of rabbitmq:cluster:members is a running node of this node's cluster
  (a member that formed a cluster of its own, or has not rejoined, fails the check);
- no resource alarm (memory, disk) on any node, no network partition;
- every quorum queue has each of its members online (a member that came back has caught
  up with its queues' leaders).

`check.py` prints one line and exits 0 when all holds. `check.py --json` prints the
facts as one JSON object (for `saline status`: healthy, summary, members, running
nodes, alarms, quorum queues) and exits the same way.
"""

import json
import subprocess
import sys

TIMEOUT = 60


def ctl(*args):
    """A rabbitmqctl command's JSON output (Debian's wrapper runs it as rabbitmq, with
    the node's cookie)."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args, "--formatter", "json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        why = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise RuntimeError(f"rabbitmqctl {args[0]}: {why[-1] if why else done.returncode}")
    return json.loads(done.stdout or "null")


def node_name(member):
    return f"rabbit@{member['host']}"


def quorum_queues():
    """(vhost, name, members, online) of every quorum queue."""
    out = []
    for vhost in ctl("list_vhosts", "name"):
        rows = ctl("list_queues", "-p", vhost["name"], "name", "type", "members", "online")
        for q in rows:
            if q.get("type") == "quorum":
                out.append((vhost["name"], q["name"], q.get("members") or [], q.get("online") or []))
    return out


def cluster_facts(cluster):
    status = ctl("cluster_status")
    want = [node_name(m) for m in cluster.get("members", [])]
    running = sorted(status.get("running_nodes", []))
    alarms = status.get("alarms", [])
    partitions = status.get("partitions", {})
    queues = quorum_queues()
    lagging = [
        f"{vhost}/{name} ({', '.join(sorted(set(members) - set(online)))} offline)"
        for vhost, name, members, online in queues
        if set(members) - set(online)
    ]
    problems = []
    missing = [n for n in want if n not in running]
    if missing:
        problems.append(f"{', '.join(missing)} not running in the cluster")
    if alarms:
        problems.append("alarms: " + ", ".join(json.dumps(a, sort_keys=True) for a in alarms))
    if partitions:
        problems.append(f"partitions: {json.dumps(partitions, sort_keys=True)}")
    if lagging:
        problems.append("quorum queues with members offline: " + "; ".join(lagging))
    facts = {
        "cluster": status.get("cluster_name", ""),
        "members": want,
        "running": running,
        "alarms": alarms,
        "partitions": partitions,
        "quorum_queues": len(queues),
        "quorum_queues_lagging": lagging,
    }
    summary = (
        f"{len(want) - len(missing)} of {len(want)} members running, "
        f"{'alarms' if alarms else 'no alarms'}, {len(queues)} quorum queues"
        + (f", {len(lagging)} with members offline" if lagging else " with every member online")
    )
    return facts, problems, summary


def main(argv):
    as_json = "--json" in argv[1:]
    pillar = json.load(sys.stdin)
    cluster = pillar.get("cluster") or {}
    facts = {"listeners": True}
    problems = []
    summary = "listeners accept connections"
    ports = subprocess.run(
        ["rabbitmq-diagnostics", "-q", "check_port_connectivity"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if ports.returncode != 0:
        facts["listeners"] = False
        lines = (ports.stderr.strip() or ports.stdout.strip()).splitlines()
        problems.append("listeners: " + (lines[-1] if lines else f"exit {ports.returncode}"))
        summary = "listeners do not accept connections"
    if cluster.get("enabled"):
        try:
            more, found, summary = cluster_facts(cluster)
            facts.update(more)
            problems += found
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            problems.append(str(e))
            summary = "cluster state unknown"
    facts["problems"] = problems
    facts["healthy"] = not problems
    facts["summary"] = summary + ("; " + "; ".join(problems) if problems else "")
    if as_json:
        print(json.dumps(facts, sort_keys=True))
    else:
        print("rabbitmq: " + facts["summary"])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

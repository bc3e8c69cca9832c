"""keepalived's health and API check (formula.yml ``health`` and ``api_check``): the state
of each VRRP instance of this node, and whether it holds its virtual addresses.

Reads keepalived:cluster as JSON on stdin (``saline-entrypoint with-pillar
keepalived:cluster``); each instance's state comes from /run/keepalived-state/NAME,
which keepalived's notify script writes on every change, the addresses on its interface
from ``ip -4 -o addr show dev IF``. Prints one line, e.g.

    VIP: MASTER, holds 10.10.0.50 on eth0
    VIP: BACKUP, 10.10.0.50 is held elsewhere

or, with ``--json``, one JSON object by instance name: ``state`` (MASTER, BACKUP, FAULT,
STOP or UNKNOWN), ``addresses``, ``interface`` and ``holds`` (the addresses it holds).
With ``--status``, what ``saline status`` shows: ``healthy``, ``summary``, ``state`` and
``holds`` of the node, and ``instances`` as with ``--json``. Exit 0 when every instance
takes part in VRRP and agrees with its interface: MASTER holding all its addresses, or
BACKUP holding none; 1 otherwise (FAULT: a track script fails; no state yet; a MASTER
without its address); 2 without a pillar. Standard library only; never prints the VRRP
password.
"""

import json
import subprocess
import sys

STATE_DIR = "/run/keepalived-state"


def instances(cluster):
    """(name, interface, [addresses]) of each enabled instance, by name."""
    out = []
    for name, inst in sorted((cluster.get("instance") or {}).items()):
        if not isinstance(inst, dict) or inst.get("enabled", True) is False:
            continue
        addresses = inst.get("addresses") or [inst.get("address")]
        out.append((name, str(inst.get("interface") or "eth0"), [str(a) for a in addresses]))
    return out


def held(interface):
    """The IPv4 addresses on ``interface`` (without their prefix length)."""
    done = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"ip addr show dev {interface} failed")
    words = done.stdout.split()
    return {words[i + 1].split("/")[0] for i, w in enumerate(words[:-1]) if w == "inet"}


def state_of(name):
    """The state the notify script last wrote (UNKNOWN before the first)."""
    try:
        with open(f"{STATE_DIR}/{name}") as fh:
            words = fh.read().split()
    except OSError:
        return "UNKNOWN"
    return words[0] if words else "UNKNOWN"


def main(argv):
    as_json = "--json" in argv[1:]
    try:
        cluster = json.load(sys.stdin)
        if not isinstance(cluster, dict):
            raise ValueError("keepalived:cluster is not a mapping")
    except ValueError as e:
        print(f"keepalived: no pillar: {e}")
        return 2
    found = instances(cluster)
    if not found:
        print("keepalived: no VRRP instance in keepalived:cluster:instance")
        return 1
    report, lines, good = {}, [], True
    for name, interface, addresses in found:
        state = state_of(name)
        try:
            holds = sorted(a for a in addresses if a in held(interface))
        except (OSError, subprocess.SubprocessError) as e:
            print(f"keepalived {name}: cannot read the addresses of {interface}: {e}")
            return 1
        report[name] = {
            "state": state,
            "addresses": addresses,
            "interface": interface,
            "holds": holds,
        }
        shown = ", ".join(addresses)
        if state == "MASTER" and len(holds) == len(addresses):
            lines.append(f"{name}: MASTER, holds {shown} on {interface}")
        elif state == "BACKUP" and not holds:
            lines.append(f"{name}: BACKUP, {shown} is held elsewhere")
        else:
            good = False
            having = ", ".join(holds) or "none of " + shown
            lines.append(f"{name}: {state}, holds {having} on {interface}")
    if "--status" in argv[1:]:
        # For `saline status`: healthy and a summary, the state (MASTER when this node
        # holds every address of every instance) and each instance.
        states = {r["state"] for r in report.values()}
        view = {
            "healthy": good,
            "summary": "; ".join(lines),
            "state": states.pop() if len(states) == 1 else "MIXED",
            "holds": sorted(a for r in report.values() for a in r["holds"]),
            "instances": report,
        }
        print(json.dumps(view, sort_keys=True))
    else:
        print(json.dumps(report, sort_keys=True) if as_json else "; ".join(lines))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

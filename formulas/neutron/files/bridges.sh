#!/bin/sh
# neutron-linuxbridge-agent's start (formula.yml command):
#   neutron-bridges BRIDGES-FILE COMMAND...
# makes each bridge of BRIDGES-FILE (lines "BRIDGE [ADDRESS/PREFIX]", rendered from
# neutron:compute:physical_networks) in this network namespace, the node's, then execs
# COMMAND (the agent), which exits when a mapped bridge is missing. Idempotent: it runs at
# every start, so a node container made anew (a new namespace) gets its bridges back.
#
# For each bridge, also:
# - the address (the external network's gateway, 172.24.4.1/24 in the example): this
#   namespace reaches routers' gateways and floating addresses over the bridge;
# - a FORWARD rule dropping what would be routed from the bridge to anywhere else: the
#   external network's traffic never leaves the node (and so the machine); nothing is
#   masqueraded for it.
# And bridged traffic through iptables (br_netfilter, per network namespace), without
# which the agent's security groups filter nothing (it only warns).
set -eu

bridges=$1
shift

while read -r bridge address; do
    case "$bridge" in ''|'#'*) continue ;; esac
    if ! ip link show dev "$bridge" >/dev/null 2>&1; then
        ip link add name "$bridge" type bridge
        echo "neutron-bridges: made bridge $bridge" >&2
    fi
    if [ -n "${address:-}" ] && ! ip -o -4 addr show dev "$bridge" | grep -q " inet $address "; then
        # Another address (the model changed it) goes: one gateway address per bridge.
        ip -4 addr flush dev "$bridge"
        ip addr add "$address" dev "$bridge"
        echo "neutron-bridges: $bridge has $address" >&2
    fi
    ip link set dev "$bridge" up
    if ! iptables -C FORWARD -i "$bridge" ! -o "$bridge" -j DROP 2>/dev/null; then
        iptables -I FORWARD -i "$bridge" ! -o "$bridge" -j DROP
    fi
done < "$bridges"

for name in bridge-nf-call-iptables bridge-nf-call-ip6tables bridge-nf-call-arptables; do
    if [ -w "/proc/sys/net/bridge/$name" ]; then
        echo 1 > "/proc/sys/net/bridge/$name"
    fi
done

exec "$@"

#!/bin/sh
# saline's launcher of a Ceph daemon (formula.yml command: ceph-run mon|mgr|osd), run by
# saline-entrypoint as the ceph user once configure wrote /etc/ceph: the daemon whose id
# /etc/ceph/saline-DAEMON.env names (ceph:DAEMON:id), in the foreground (exec: it is
# PID 1 and gets the signals), its log on stderr (the container's log) and nothing in
# files (ceph.conf). The monitor's cluster log is not copied there too: its own log has
# the cluster's messages already.
set -eu
daemon=${1:?usage: ceph-run mon|mgr|osd}
case $daemon in
    mon|mgr|osd) ;;
    *) echo "ceph-run: unknown daemon $daemon (mon, mgr or osd)" >&2; exit 2 ;;
esac
. "/etc/ceph/saline-$daemon.env"
exec "/usr/bin/ceph-$daemon" -f --cluster ceph --id "$CEPH_ID" \
    --log-to-stderr=true --err-to-stderr=true

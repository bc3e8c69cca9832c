#!/bin/sh
# keepalived's notify script: keepalived runs it (as keepalived_script) on every state
# change of a VRRP instance with: INSTANCE|GROUP NAME STATE PRIORITY. It records the
# state (MASTER, BACKUP, FAULT, STOP) in /run/keepalived-state/NAME, where the health and
# API check (keepalived-state.py) reads it. keepalived logs the change itself. Not the
# priority: a reload or a track script's weight changes it without a notification.
set -eu
[ "$1" = INSTANCE ] || exit 0
dir=/run/keepalived-state
printf '%s\n' "$3" >"$dir/.$2.new"
mv -f "$dir/.$2.new" "$dir/$2"

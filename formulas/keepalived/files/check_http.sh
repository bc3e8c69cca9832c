#!/bin/bash
# keepalived's track script (a vrrp_script of keepalived:cluster:vrrp_scripts with `http`):
# does a local HTTP server answer?
#
#   keepalived-check-http URL [STATUS...]
#
# Exit 0 when a GET of URL (http://HOST:PORT/PATH) gets an HTTP answer: any status, or
# one of STATUS when given. haproxy's health frontend answers 503 while a proxied API has
# no live server: that haproxy still serves the others, so by default any answer counts.
# No curl in the image and no Python per probe: bash's /dev/tcp, a few milliseconds.
# keepalived bounds it (the script's timeout) and runs it as keepalived_script.
url=${1:?usage: keepalived-check-http URL [STATUS...]}
shift
rest=${url#http://}
hostport=${rest%%/*}
path=/
[ "$rest" != "$hostport" ] && path=/${rest#*/}
host=${hostport%:*}
port=${hostport##*:}
[ "$host" = "$hostport" ] && port=80
exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || exit 1
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
read -r version status _ <&3 || exit 1
case $version in
HTTP/*) ;;
*) exit 1 ;;
esac
[ $# -eq 0 ] && exit 0
for want in "$@"; do
    [ "$status" = "$want" ] && exit 0
done
exit 1

#!/bin/sh
# nova-libvirt's command (formula nova). A privileged container sees the host's devices:
# without /dev/kvm, libvirt offers QEMU's TCG only. The kvm device here cannot run an
# unmodified guest (software nested virtualization: ../shared/platform-notes.md), and
# libvirt would advertise it.
set -e
rm -f /dev/kvm
mkdir -p /run/libvirt /var/lib/nova/instances
exec /usr/sbin/libvirtd

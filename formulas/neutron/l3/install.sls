# haproxy, keepalived, radvd, iptables and arping come with it; its Recommends
# (openvswitch-switch) do not (images install no Recommends).
neutron_l3_packages:
  pkg.installed:
    - pkgs: [neutron-l3-agent]

# dnsmasq-base, haproxy (isolated networks' metadata proxy) and iptables come with it.
neutron_dhcp_packages:
  pkg.installed:
    - pkgs: [neutron-dhcp-agent]

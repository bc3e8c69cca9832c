# The L2 agent (bridge-utils, ebtables) and iptables for its security groups, which
# python3-neutron does not depend on; iproute2 (ip) comes with python3-neutron.
neutron_linuxbridge_packages:
  pkg.installed:
    - pkgs: [neutron-linuxbridge-agent, iptables]

# The start wrapper (formula.yml command): the external bridges, then the agent.
neutron_bridges_wrapper:
  file.managed:
    - name: /usr/local/lib/saline/neutron-bridges
    - source: salt://neutron/files/bridges.sh
    - makedirs: true
    - mode: "0755"

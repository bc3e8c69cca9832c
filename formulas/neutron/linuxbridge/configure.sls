# neutron.conf: what the agents of neutron:compute share.
include:
  - neutron.agent.compute

neutron_linuxbridge_config:
  file.managed:
    - name: /etc/neutron/plugins/ml2/linuxbridge_agent.ini
    - source: salt://neutron/files/linuxbridge_agent.ini.j2
    - template: jinja
    - makedirs: true
    - user: root
    - group: neutron
    - mode: "0640"

# The bridges the start wrapper makes (files/bridges.sh).
neutron_bridges_config:
  file.managed:
    - name: /etc/neutron/saline-bridges
    - source: salt://neutron/files/saline-bridges.j2
    - template: jinja
    - mode: "0644"

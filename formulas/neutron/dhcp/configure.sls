# neutron.conf: what the agents of neutron:gateway share.
include:
  - neutron.agent.gateway

neutron_dhcp_config:
  file.managed:
    - name: /etc/neutron/dhcp_agent.ini
    - source: salt://neutron/files/dhcp_agent.ini.j2
    - template: jinja
    - user: root
    - group: neutron
    - mode: "0640"

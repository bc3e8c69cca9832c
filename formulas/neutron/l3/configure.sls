# neutron.conf: what the agents of neutron:gateway share.
include:
  - neutron.agent.gateway

neutron_l3_config:
  file.managed:
    - name: /etc/neutron/l3_agent.ini
    - source: salt://neutron/files/l3_agent.ini.j2
    - template: jinja
    - user: root
    - group: neutron
    - mode: "0640"

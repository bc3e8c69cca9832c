# neutron.conf: what the agents of neutron:gateway share.
include:
  - neutron.agent.gateway

neutron_metadata_config:
  file.managed:
    - name: /etc/neutron/metadata_agent.ini
    - source: salt://neutron/files/metadata_agent.ini.j2
    - template: jinja
    - user: root
    - group: neutron
    - mode: "0640"

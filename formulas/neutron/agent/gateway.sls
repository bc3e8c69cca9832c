# The agents' neutron.conf, from neutron:gateway (files/neutron-agent.conf.j2).
neutron_agent_gateway_config:
  file.managed:
    - name: /etc/neutron/neutron.conf
    - source: salt://neutron/files/neutron-agent.conf.j2
    - template: jinja
    - context:
        section: gateway
    - user: root
    - group: neutron
    - mode: "0640"

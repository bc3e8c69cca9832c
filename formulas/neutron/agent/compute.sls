# The agents' neutron.conf, from neutron:compute (files/neutron-agent.conf.j2).
neutron_agent_compute_config:
  file.managed:
    - name: /etc/neutron/neutron.conf
    - source: salt://neutron/files/neutron-agent.conf.j2
    - template: jinja
    - context:
        section: compute
    - user: root
    - group: neutron
    - mode: "0640"

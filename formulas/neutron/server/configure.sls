neutron_server_config:
  file.managed:
    - name: /etc/neutron/neutron.conf
    - source: salt://neutron/files/neutron-server.conf.j2
    - template: jinja
    - user: root
    - group: neutron
    - mode: "0640"

neutron_ml2_config:
  file.managed:
    - name: /etc/neutron/plugins/ml2/ml2_conf.ini
    - source: salt://neutron/files/ml2_conf.ini.j2
    - template: jinja
    - makedirs: true
    - user: root
    - group: neutron
    - mode: "0640"

glance_api_config:
  file.managed:
    - name: /etc/glance/glance-api.conf
    - source: salt://glance/files/glance-api.conf.j2
    - template: jinja
    - user: root
    - group: glance
    - mode: "0640"

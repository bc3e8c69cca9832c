keystone_config:
  file.managed:
    - name: /etc/keystone/keystone.conf
    - source: salt://keystone/files/keystone.conf.j2
    - template: jinja
    - user: root
    - group: keystone
    - mode: "0640"

keystone_uwsgi:
  file.managed:
    - name: /etc/keystone/keystone-uwsgi.ini
    - source: salt://keystone/files/keystone-uwsgi.ini.j2
    - template: jinja
    - mode: "0644"

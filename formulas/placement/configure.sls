placement_config:
  file.managed:
    - name: /etc/placement/placement.conf
    - source: salt://placement/files/placement.conf.j2
    - template: jinja
    - user: root
    - group: placement
    - mode: "0640"

placement_uwsgi:
  file.managed:
    - name: /etc/placement/placement-uwsgi.ini
    - source: salt://placement/files/placement-uwsgi.ini.j2
    - template: jinja
    - mode: "0644"

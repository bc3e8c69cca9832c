# saline's settings as a snippet of local_settings.d: Django's settings module runs
# local_settings.py first, then every local_settings.d/*.py in name order, so Debian's
# own snippets (_0001 to _0006: among them a per-process LocMemCache) would override
# whatever local_settings.py said. _9000 comes last and wins. It holds SECRET_KEY:
# readable by the service's group only.
horizon_settings:
  file.managed:
    - name: /etc/openstack-dashboard/local_settings.d/_9000_saline.py
    - source: salt://horizon/files/local_settings.py.j2
    - template: jinja
    - user: root
    - group: www-data
    - mode: "0640"

horizon_uwsgi:
  file.managed:
    - name: /etc/openstack-dashboard/horizon-uwsgi.ini
    - source: salt://horizon/files/horizon-uwsgi.ini.j2
    - template: jinja
    - mode: "0644"

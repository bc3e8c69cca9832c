nova_metadata_uwsgi:
  file.managed:
    - name: /etc/nova/nova-metadata-uwsgi.ini
    - source: salt://nova/files/uwsgi.ini.j2
    - template: jinja
    - context:
        app: metadata
        wsgi: /usr/bin/nova-metadata-wsgi
        port_key: metadata_port
    - mode: "0644"

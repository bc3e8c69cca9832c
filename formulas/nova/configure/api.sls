nova_api_uwsgi:
  file.managed:
    - name: /etc/nova/nova-api-uwsgi.ini
    - source: salt://nova/files/uwsgi.ini.j2
    - template: jinja
    - context:
        app: api
        wsgi: /usr/bin/nova-api-wsgi
        port_key: port
    - mode: "0644"

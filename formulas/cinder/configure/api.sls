cinder_api_uwsgi:
  file.managed:
    - name: /etc/cinder/cinder-api-uwsgi.ini
    - source: salt://cinder/files/cinder-api-uwsgi.ini.j2
    - template: jinja
    - mode: "0644"

mariadb_config:
  file.managed:
    - name: /etc/mysql/mariadb.conf.d/99-saline.cnf
    - source: salt://mariadb/files/99-saline.cnf.j2
    - template: jinja
    - mode: "0644"

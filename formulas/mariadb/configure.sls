mariadb_config:
  file.managed:
    - name: /etc/mysql/mariadb.conf.d/99-saline.cnf
    - source: salt://mariadb/files/99-saline.cnf.j2
    - template: jinja
    - mode: "0644"

# The server's socket folder (a volume in a stack, shared with the bootstrap task).
mariadb_run_dir:
  file.directory:
    - name: /run/mysqld
    - user: mysql
    - group: mysql
    - mode: "0755"

mariadb_config:
  file.managed:
    - name: /etc/mysql/mariadb.conf.d/99-saline.cnf
    - source: salt://mariadb/files/99-saline.cnf.j2
    - template: jinja
    - mode: "0644"

# Run by mariadbd at every start (99-saline.cnf's init-file): the administrator the
# bootstrap tasks log in as over the network. It holds the admin's password: mysql only.
mariadb_admin:
  file.managed:
    - name: /etc/mysql/saline-admin.sql
    - source: salt://mariadb/files/admin.sql.j2
    - template: jinja
    - user: mysql
    - group: mysql
    - mode: "0600"

# The server's socket folder (runtime state: the health and API checks use the socket).
mariadb_run_dir:
  file.directory:
    - name: /run/mysqld
    - user: mysql
    - group: mysql
    - mode: "0755"

# An empty data folder gets the system tables, as Debian's package made them in the
# image: a podman volume starts with the image's files, a Kubernetes volume claim empty.
mariadb_datadir:
  cmd.run:
    - name: mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db
    - unless: test -d /var/lib/mysql/mysql

# One-shot and idempotent: databases and users from mysql:server:database.
mariadb_bootstrap_sql:
  file.managed:
    - name: /run/saline/mariadb-bootstrap.sql
    - source: salt://mariadb/files/bootstrap.sql.j2
    - template: jinja
    - mode: "0600"
    - makedirs: true

mariadb_bootstrap:
  cmd.run:
    - name: mariadb --protocol=socket -u root < /run/saline/mariadb-bootstrap.sql
    - require:
      - file: mariadb_bootstrap_sql

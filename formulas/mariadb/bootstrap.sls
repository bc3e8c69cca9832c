# One-shot and idempotent: databases and users from mysql:server:database, over TCP as
# the administrator mysql:server:admin (configure makes the server create it at start),
# at mysql:server:admin:host (default: the bind address, or loopback when it binds them
# all). So it runs the same in a container beside the server (compose) or in a pod of
# its own (a Kubernetes Job). Passwords stay in files only this task reads.
{%- set server = pillar['mysql']['server'] %}
{%- set admin = server.get('admin', {}) %}
{%- set bind = server.get('bind', {}) %}
{%- set host = admin.get('host') or bind.get('address') or '127.0.0.1' %}
{%- if host in ['0.0.0.0', '::', '*'] %}{% set host = '127.0.0.1' %}{% endif %}
{%- if not (admin.get('user') and admin.get('password')) %}

mariadb_admin:
  test.fail_without_changes:
    - comment: >-
        mysql:server:admin:user and mysql:server:admin:password are not both set: the
        databases task logs in to the server as that administrator
{%- else %}

mariadb_bootstrap_client:
  file.managed:
    - name: /run/saline/mariadb-admin.cnf
    - source: salt://mariadb/files/admin-client.cnf.j2
    - template: jinja
    - context:
        host: {{ host | yaml_encode }}
        port: {{ admin.get('port') or bind.get('port') or 3306 }}
    - mode: "0600"
    - makedirs: true

mariadb_bootstrap_sql:
  file.managed:
    - name: /run/saline/mariadb-bootstrap.sql
    - source: salt://mariadb/files/bootstrap.sql.j2
    - template: jinja
    - mode: "0600"
    - makedirs: true

mariadb_bootstrap:
  cmd.run:
    - name: >-
        mariadb --defaults-extra-file=/run/saline/mariadb-admin.cnf --connect-timeout=10
        --batch < /run/saline/mariadb-bootstrap.sql
    - require:
      - file: mariadb_bootstrap_client
      - file: mariadb_bootstrap_sql
{%- endif %}

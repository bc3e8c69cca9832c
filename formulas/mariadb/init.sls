include:
  - mariadb.install
  - mariadb.configure
{%- if not grains.get('noservices') %}

mariadb_service:
  service.running:
    - name: mariadb
    - enable: true
    - watch:
      - file: mariadb_config
{%- endif %}

{%- set server = pillar['keystone']['server'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] ~ '/v3' %}
# Idempotent: keystone-manage bootstrap creates or updates the admin user, project, role,
# the identity service and its endpoints.
keystone_bootstrap:
  cmd.run:
    - name: >-
        keystone-manage bootstrap
        --bootstrap-password "$SALINE_ADMIN_PASSWORD"
        --bootstrap-username {{ server['admin_name'] }}
        --bootstrap-project-name {{ server['admin_project'] }}
        --bootstrap-admin-url {{ url }}
        --bootstrap-internal-url {{ url }}
        --bootstrap-public-url {{ url }}
        --bootstrap-region-id {{ server['region'] }}
    - env:
      - SALINE_ADMIN_PASSWORD: {{ server['admin_password'] | yaml_encode }}
    - output_loglevel: quiet
    - runas: keystone

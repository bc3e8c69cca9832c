# On a host: install, configure, and keep the service running.
include:
  - keepalived.install
  - keepalived.configure
{%- if not grains.get('noservices') %}

keepalived_service:
  service.running:
    - name: keepalived
    - enable: true
    - reload: true
    - watch:
      - file: keepalived_config
{%- endif %}

include:
  - glance.install
  - glance.configure
{%- if not grains.get('noservices') %}

glance_api_service:
  service.running:
    - name: glance-api
    - enable: true
    - watch:
      - file: glance_api_config
{%- endif %}

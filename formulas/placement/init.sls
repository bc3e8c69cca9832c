include:
  - placement.install
  - placement.configure
{%- if not grains.get('noservices') %}

placement_api_service:
  service.running:
    - name: placement-api
    - enable: true
    - watch:
      - file: placement_config
      - file: placement_uwsgi
{%- endif %}

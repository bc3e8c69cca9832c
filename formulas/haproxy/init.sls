include:
  - haproxy.install
  - haproxy.configure
{%- if not grains.get('noservices') %}

haproxy_service:
  service.running:
    - name: haproxy
    - enable: true
    - reload: true
    - watch:
      - file: haproxy_config
{%- endif %}

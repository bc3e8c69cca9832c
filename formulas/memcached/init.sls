# On a host: install, configure, and keep the service running.
include:
  - memcached.install
  - memcached.configure
{%- if not grains.get('noservices') %}

memcached_service:
  service.running:
    - name: memcached
    - enable: true
    - watch:
      - file: memcached_config
{%- endif %}

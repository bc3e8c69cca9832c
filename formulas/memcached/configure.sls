{%- set server = pillar['memcached']['server'] %}
memcached_config:
  file.managed:
    - name: /etc/memcached.conf
    - source: salt://memcached/files/memcached.conf.j2
    - template: jinja
    - mode: "0644"

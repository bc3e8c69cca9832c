haproxy_config:
  file.managed:
    - name: /etc/haproxy/haproxy.cfg
    - source: salt://haproxy/files/haproxy.cfg.j2
    - template: jinja
    - mode: "0644"

# The admin socket's folder (the runtime API) and the saved server states.
{%- for dir in ['/run/haproxy', '/var/lib/haproxy'] %}
haproxy_dir_{{ loop.index }}:
  file.directory:
    - name: {{ dir }}
    - mode: "0750"
{%- endfor %}

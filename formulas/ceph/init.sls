{#- On a host: the packages, ceph.conf and the data folders of the node's enabled
    daemons, and their Debian services (ceph-mon@ID...). The stores are the bootstrap
    tasks' (formula.yml), which a host apply does not run. #}
{%- from "ceph/map.jinja" import conf, daemon_files, daemons, data, ids with context %}
include:
  - ceph.install.common
{%- for d in daemons %}
  - ceph.install.{{ d }}
{%- endfor %}
{{ conf(daemons) }}
{%- for d in daemons %}
{{ daemon_files(d, ids[d], data[d]) }}
{%- endfor %}
{%- if not grains.get('noservices') %}
{%- for d in daemons %}

ceph_{{ d }}_service:
  service.running:
    - name: ceph-{{ d }}@{{ ids[d] }}
    - enable: true
    - watch:
      - file: ceph_conf
{%- endfor %}
{%- endif %}

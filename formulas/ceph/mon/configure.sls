{%- from "ceph/map.jinja" import conf, daemon_files, data, mon_id, members with context %}
{%- if mon_id not in members | map(attribute='name') | map('string') | list %}
{{ raise('ceph:mon: this node\'s monitor ' ~ mon_id ~ ' (ceph:mon:id) is not among ceph:common:members (' ~ members | map(attribute='name') | join(', ') ~ ')') }}
{%- endif %}
{{ conf(['mon']) }}
{{ daemon_files('mon', mon_id, data['mon']) }}

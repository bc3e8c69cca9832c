{%- from "ceph/map.jinja" import conf, daemon_files, data, osd with context %}
{%- if osd.get('id') is none or osd.get('id') | string | int(-1) < 0 or not osd.get('uuid') %}
{{ raise('ceph:osd needs an id (a whole number: the OSD\'s number in the cluster, osd.0) and a uuid (its identity): both are fixed once the OSD exists') }}
{%- endif %}
{{ conf(['osd']) }}
{{ daemon_files('osd', osd['id'], data['osd']) }}

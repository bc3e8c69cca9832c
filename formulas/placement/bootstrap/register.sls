{%- from "openstack/register.jinja" import register %}
{%- set server = pillar['placement']['server'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] %}
# Idempotent: the placement service user, its role, the placement service and its
# endpoints (the openstack library's script: keystone's API in one process).
{{ register('placement', 'placement', server['identity'], url) }}

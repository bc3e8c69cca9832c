{%- from "openstack/register.jinja" import register %}
{%- set server = pillar['glance']['server'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] %}
# Idempotent: the glance service user, its role, the image service and its endpoints
# (the openstack library formula's script: keystone's API in one process).
{{ register('glance', 'image', server['identity'], url) }}

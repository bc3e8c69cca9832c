{%- from "openstack/register.jinja" import register %}
{%- set server = pillar['cinder']['controller'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] ~ '/v3/%(project_id)s' %}
# Idempotent: the cinder service user, the volumev3 service and its endpoints.
{{ register('cinderv3', 'volumev3', server['identity'], url) }}

{%- from "openstack/register.jinja" import register %}
{%- set server = pillar['nova']['controller'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] ~ '/v2.1' %}
# Idempotent: the nova service user (admin, and `service`: the role of the service token
# cinder checks before a detach), the compute service and its endpoints.
{{ register('nova', 'compute', server['identity'], url, roles=['service']) }}

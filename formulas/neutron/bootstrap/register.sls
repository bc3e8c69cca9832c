{%- from "openstack/register.jinja" import register %}
{%- set server = pillar['neutron']['server'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] %}
# Idempotent: the neutron service user, its role, the network service and its endpoints
# (the openstack library's script: keystone's API in one process).
{{ register('neutron', 'network', server['identity'], url) }}

# nova.conf of the control services (API, metadata, conductor, scheduler, serial proxy)
# from nova:controller.
{%- from "nova/map.jinja" import nova_conf with context %}
{{ nova_conf('controller') }}

{#- The host path (saline host apply): the parts the node's pillar enables, installed and
    configured, and Debian's services kept running. One /etc/nova/nova.conf per host:
    nova:controller and nova:compute on one host are refused (a compute node's nova.conf
    holds no database credentials). The containers' libvirtd wrapper is not used here:
    Debian's libvirtd runs on the host. #}
{%- set nova = pillar.get('nova', {}) %}
{%- set controller = nova.get('controller', {}).get('enabled') is sameas true %}
{%- set compute = nova.get('compute', {}).get('enabled') is sameas true %}
{%- if controller and compute %}
{{ raise('nova on one host: nova:controller with nova:compute is not supported (one nova.conf per host)') }}
{%- endif %}
{%- set services = [] %}
{%- if controller %}
{%- do services.extend([('nova-api', ['nova_config', 'nova_api_uwsgi']), ('nova-conductor', ['nova_config']), ('nova-scheduler', ['nova_config']), ('nova-serialproxy', ['nova_config'])]) %}
{%- endif %}
{%- if compute %}
{%- do services.extend([('libvirtd', ['nova_libvirtd_conf', 'nova_qemu_conf']), ('nova-compute', ['nova_config'])]) %}
{%- endif %}
include:
  - nova.install.common
{%- if controller %}
  - nova.install.api
  - nova.install.conductor
  - nova.install.scheduler
  - nova.install.serialproxy
  - nova.configure.controller
  - nova.configure.api
  - nova.configure.metadata
{%- endif %}
{%- if compute %}
  - nova.install.compute
  - nova.configure.compute
  - nova.configure.libvirt
{%- endif %}
{%- if not grains.get('noservices') %}
{%- for service, files in services %}

{{ service }}_service:
  service.running:
    - name: {{ service }}
    - enable: true
    - watch:
{%- for f in files %}
      - file: {{ f }}
{%- endfor %}
{%- endfor %}
{%- endif %}

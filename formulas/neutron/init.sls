{#- The host path (saline host apply): the parts the node's pillar enables, installed and
    configured, and Debian's services kept running. One /etc/neutron/neutron.conf per
    host: a node with neutron:compute and neutron:gateway writes the gateway's (the same
    values); neutron-server and agents on one host are not supported (their neutron.conf
    differ). neutron-server is installed and configured only: Debian runs it as two
    services (neutron-api under uwsgi, neutron-rpc-server) whose packages the formula does
    not install; its containers run one eventlet neutron-server. The containers' start
    wrapper is not used here: on a host the external bridge is part of the host's network
    configuration. #}
{%- set neutron = pillar.get('neutron', {}) %}
{%- set server = neutron.get('server', {}).get('enabled') is sameas true %}
{%- set compute = neutron.get('compute', {}).get('enabled') is sameas true %}
{%- set gateway = neutron.get('gateway', {}).get('enabled') is sameas true %}
{%- if server and (compute or gateway) %}
{{ raise('neutron on one host: neutron:server with neutron:compute or neutron:gateway is not supported (one neutron.conf per host)') }}
{%- endif %}
{%- set parts = [] %}
{%- if compute %}{% do parts.append(('linuxbridge', 'neutron-linuxbridge-agent', ['neutron_linuxbridge_config'])) %}{% endif %}
{%- if gateway %}
{%- do parts.append(('dhcp', 'neutron-dhcp-agent', ['neutron_dhcp_config'])) %}
{%- do parts.append(('l3', 'neutron-l3-agent', ['neutron_l3_config'])) %}
{%- do parts.append(('metadata', 'neutron-metadata-agent', ['neutron_metadata_config'])) %}
{%- endif %}
include:
  - neutron.common
{%- if server %}
  - neutron.server.install
  - neutron.server.configure
{%- endif %}
{%- for part, _, _ in parts %}
  - neutron.{{ part }}.install
  - neutron.{{ part }}.configure
{%- endfor %}
{%- if compute and gateway %}

exclude:
  - id: neutron_agent_compute_config
{%- endif %}
{%- if not grains.get('noservices') %}
{%- for _, service, files in parts %}

{{ service }}_service:
  service.running:
    - name: {{ service }}
    - enable: true
    - watch:
{%- for f in files %}
      - file: {{ f }}
{%- endfor %}
      - file: neutron_agent_{{ 'gateway' if gateway else 'compute' }}_config
{%- endfor %}
{%- endif %}

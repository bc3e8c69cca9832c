{#- The host path (saline host apply): the parts the node's pillar enables, installed and
    configured, and Debian's services kept running. One /etc/cinder/cinder.conf per host:
    with cinder:controller and cinder:volume on one host it is the volume role's (the
    same database, queue and keystone values, plus the backend). #}
{%- set cinder = pillar.get('cinder', {}) %}
{%- set controller = cinder.get('controller', {}).get('enabled') is sameas true %}
{%- set volume = cinder.get('volume', {}).get('enabled') is sameas true %}
{%- set services = [] %}
{%- if controller %}
{%- do services.extend([('cinder-api', ['cinder_config', 'cinder_api_uwsgi']), ('cinder-scheduler', ['cinder_config'])]) %}
{%- endif %}
{%- if volume %}
{%- do services.append(('cinder-volume', ['cinder_config', 'cinder_ceph_conf'])) %}
{%- endif %}
include:
  - cinder.install.common
{%- if controller %}
  - cinder.install.api
  - cinder.install.scheduler
  - cinder.configure.api
{%- if not volume %}
  - cinder.configure.controller
{%- endif %}
{%- endif %}
{%- if volume %}
  - cinder.install.volume
  - cinder.configure.volume
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

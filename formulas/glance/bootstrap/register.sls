{%- set server = pillar['glance']['server'] %}
{%- set identity = server['identity'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] %}
# Idempotent: the glance service user, its role, the image service and its endpoints
# (files/register.py: keystone's API in one process; secrets only in its environment).
glance_register_script:
  file.managed:
    - name: /usr/local/lib/saline/glance-register.py
    - source: salt://glance/files/register.py
    - makedirs: true
    - mode: "0644"

glance_register:
  cmd.run:
    - name: python3 /usr/local/lib/saline/glance-register.py
    - env:
      - GLANCE_USER: {{ identity['user'] | yaml_encode }}
      - GLANCE_PASSWORD: {{ identity['password'] | yaml_encode }}
      - GLANCE_PROJECT: {{ identity['tenant'] | yaml_encode }}
      - GLANCE_URL: {{ url | yaml_encode }}
      - GLANCE_REGION: {{ identity['region'] | yaml_encode }}
      - OS_AUTH_URL: {{ identity['auth_url'] | yaml_encode }}
      - OS_USERNAME: {{ identity['admin_user'] | yaml_encode }}
      - OS_PASSWORD: {{ identity['admin_password'] | yaml_encode }}
      - OS_PROJECT_NAME: {{ identity['admin_project'] | yaml_encode }}
    - output_loglevel: quiet
    - require:
      - file: glance_register_script

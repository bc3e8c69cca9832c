{%- set server = pillar['nova']['controller'] %}
{%- set identity = server['identity'] %}
# Idempotent: the flavors of nova:controller:flavors, created through the running API
# (one with the same name and other sizes is a mistake named, not replaced: a flavor in
# use cannot change).
nova_flavors_script:
  file.managed:
    - name: /usr/local/lib/saline/nova-flavors.py
    - source: salt://nova/files/flavors.py
    - makedirs: true
    - mode: "0644"

nova_flavors:
  cmd.run:
    - name: python3 /usr/local/lib/saline/nova-flavors.py
    - env:
      # JSON in a YAML string (yaml_encode cannot take json's Markup).
      - FLAVORS: '{{ server.get('flavors', {}) | json | replace("'", "''") }}'
      - OS_AUTH_URL: {{ identity['auth_url'] | yaml_encode }}
      - OS_USERNAME: {{ identity['admin_user'] | yaml_encode }}
      - OS_PASSWORD: {{ identity['admin_password'] | yaml_encode }}
      - OS_PROJECT_NAME: {{ identity['admin_project'] | yaml_encode }}
      - OS_REGION_NAME: {{ identity['region'] | yaml_encode }}
    - output_loglevel: quiet
    - require:
      - file: nova_flavors_script

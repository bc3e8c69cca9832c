{%- set server = pillar['neutron']['server'] %}
{%- set identity = server['identity'] %}
# Idempotent: the networks and subnets of neutron:server:networks, created through the
# running API when missing (an existing one is left as it is: networks in use do not
# change under their ports).
neutron_networks_script:
  file.managed:
    - name: /usr/local/lib/saline/neutron-networks.py
    - source: salt://neutron/files/networks.py
    - makedirs: true
    - mode: "0644"

neutron_networks:
  cmd.run:
    - name: python3 /usr/local/lib/saline/neutron-networks.py
    - env:
      # JSON in a YAML string (yaml_encode cannot take json's Markup).
      - NETWORKS: '{{ server.get('networks', {}) | json | replace("'", "''") }}'
      - OS_AUTH_URL: {{ identity['auth_url'] | yaml_encode }}
      - OS_USERNAME: {{ identity['admin_user'] | yaml_encode }}
      - OS_PASSWORD: {{ identity['admin_password'] | yaml_encode }}
      - OS_PROJECT_NAME: {{ identity['admin_project'] | yaml_encode }}
      - OS_REGION_NAME: {{ identity['region'] | yaml_encode }}
    - output_loglevel: quiet
    - require:
      - file: neutron_networks_script

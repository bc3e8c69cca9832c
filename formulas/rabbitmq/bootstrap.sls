# One-shot and idempotent: virtual hosts, users, permissions and policies.
{%- set server = pillar['rabbitmq']['server'] %}
{%- for vhost, host in server.get('host', {}) | dictsort if host.get('enabled', true) %}
rabbitmq_vhost_{{ loop.index }}:
  cmd.run:
    - name: rabbitmqctl add_vhost '{{ vhost }}'
    - unless: rabbitmqctl -q list_vhosts | grep -qx '{{ vhost }}'

rabbitmq_user_{{ loop.index }}:
  cmd.run:
    - name: >-
        rabbitmqctl add_user '{{ host['user'] }}' "$SALINE_PASSWORD" ||
        rabbitmqctl change_password '{{ host['user'] }}' "$SALINE_PASSWORD"
    - env:
      - SALINE_PASSWORD: {{ host['password'] | yaml_encode }}
    - output_loglevel: quiet

rabbitmq_permissions_{{ loop.index }}:
  cmd.run:
    - name: rabbitmqctl set_permissions -p '{{ vhost }}' '{{ host['user'] }}' '.*' '.*' '.*'
{%- for policy in host.get('policies', []) %}

rabbitmq_policy_{{ loop.index }}_{{ policy['name'] }}:
  cmd.run:
    # A block scalar: the JSON definition's ": " would otherwise read as YAML.
    - name: >-
        rabbitmqctl set_policy -p '{{ vhost }}' '{{ policy['name'] }}'
        '{{ policy['pattern'] }}' '{{ policy['definition'] }}'
{%- endfor %}
{%- endfor %}

# One-shot and idempotent: virtual hosts, users, permissions and policies of
# rabbitmq:server:host, through the management HTTP API of the node at
# rabbitmq:server:admin:host as the administrator rabbitmq:server:admin (files/vhosts.py).
# Over the network, so it runs the same beside the node (compose) and in a pod of its
# own (a Kubernetes Job); the script reads the pillar on its stdin (`saline-entrypoint
# with-pillar`): no secret in its arguments or environment.
{%- set admin = pillar['rabbitmq']['server'].get('admin', {}) %}
{%- if not (admin.get('name') and admin.get('password')) %}
rabbitmq_admin:
  test.fail_without_changes:
    - comment: >-
        rabbitmq:server:admin:name and rabbitmq:server:admin:password are not both set:
        the vhosts task logs in to the node's management API as that administrator
{%- else %}
rabbitmq_vhosts_script:
  file.managed:
    - name: /usr/local/lib/saline/rabbitmq-vhosts.py
    - source: salt://rabbitmq/files/vhosts.py
    - makedirs: true
    - mode: "0644"

rabbitmq_vhosts:
  cmd.run:
    - name: saline-entrypoint with-pillar rabbitmq:server python3 /usr/local/lib/saline/rabbitmq-vhosts.py
    - require:
      - file: rabbitmq_vhosts_script
{%- endif %}

rabbitmq_config:
  file.managed:
    - name: /etc/rabbitmq/rabbitmq.conf
    - source: salt://rabbitmq/files/rabbitmq.conf.j2
    - template: jinja
    - mode: "0644"

rabbitmq_env:
  file.managed:
    - name: /etc/rabbitmq/rabbitmq-env.conf
    - source: salt://rabbitmq/files/rabbitmq-env.conf.j2
    - template: jinja
    - mode: "0644"

# The management plugin: its HTTP API is how the bootstrap tasks reach the node.
rabbitmq_plugins:
  file.managed:
    - name: /etc/rabbitmq/enabled_plugins
    - source: salt://rabbitmq/files/enabled_plugins.j2
    - template: jinja
    - mode: "0644"

# Imported at every boot: the administrator of rabbitmq:server:admin (its password: the
# node's user only).
rabbitmq_definitions:
  file.managed:
    - name: /etc/rabbitmq/definitions.json
    - source: salt://rabbitmq/files/definitions.json.j2
    - template: jinja
    - user: rabbitmq
    - group: rabbitmq
    - mode: "0600"

# The node's data folder, the node's own: a Kubernetes volume claim starts empty and
# root's (a podman volume gets the image's folder). The node makes its cookie and
# database there itself.
rabbitmq_data_dir:
  file.directory:
    - name: /var/lib/rabbitmq
    - user: rabbitmq
    - group: rabbitmq
    - mode: "0755"
{%- if pillar['rabbitmq'].get('cluster', {}).get('enabled') %}

# The Erlang cookie every member of the cluster shares (rabbitmq:server:secret_key, as
# salt-formulas name it): the nodes and their CLI tools authenticate with it. Written at
# every start, from the pillar's secrets, never into the image.
{%- if not pillar['rabbitmq']['server'].get('secret_key') %}
rabbitmq_cookie:
  test.fail_without_changes:
    - comment: >-
        rabbitmq:cluster is enabled but rabbitmq:server:secret_key (the Erlang cookie
        the members share) is not set
{%- else %}
rabbitmq_cookie:
  file.managed:
    - name: /var/lib/rabbitmq/.erlang.cookie
    - contents_pillar: rabbitmq:server:secret_key
    - user: rabbitmq
    - group: rabbitmq
    - mode: "0400"
    - require:
      - file: rabbitmq_data_dir
{%- endif %}
{%- endif %}

keystone_config:
  file.managed:
    - name: /etc/keystone/keystone.conf
    - source: salt://keystone/files/keystone.conf.j2
    - template: jinja
    - user: root
    - group: keystone
    - mode: "0640"

keystone_uwsgi:
  file.managed:
    - name: /etc/keystone/keystone-uwsgi.ini
    - source: salt://keystone/files/keystone-uwsgi.ini.j2
    - template: jinja
    - mode: "0644"
{#- Fernet (token) and credential keys from the pillar: every instance of keystone
    writes the same keys, so a token one issues another validates, and a key rotation is
    a model change. Only the keys the pillar lists stay in the repositories. #}
{%- set server = pillar['keystone']['server'] %}
{%- set repositories = [
      ('fernet', '/etc/keystone/fernet-keys', server['tokens']['fernet_keys']),
      ('credential', '/etc/keystone/credential-keys', server['credential']['keys']),
    ] %}
{%- for kind, directory, keys in repositories %}
{%- for number, key in keys | dictsort %}

keystone_{{ kind }}_key_{{ number }}:
  file.managed:
    - name: {{ directory }}/{{ number }}
    - contents: {{ key | string | yaml_encode }}
    - contents_newline: false
    - user: keystone
    - group: keystone
    - mode: "0600"
    - makedirs: true
    - dir_mode: "0700"
    - show_changes: false
{%- endfor %}

keystone_{{ kind }}_keys:
  file.directory:
    - name: {{ directory }}
    - user: keystone
    - group: keystone
    - mode: "0700"
    - clean: true
    - require:
{%- for number in keys | sort %}
      - file: keystone_{{ kind }}_key_{{ number }}
{%- endfor %}
{%- endfor %}

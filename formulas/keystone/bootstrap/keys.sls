# Fernet and credential keys, created once (kept in the keys volumes). keystone-manage
# writes them as the keystone user, so a mounted (pre-existing) folder must be its own.
{%- for dir in ['/etc/keystone/fernet-keys', '/etc/keystone/credential-keys'] %}
keystone_key_dir_{{ loop.index }}:
  file.directory:
    - name: {{ dir }}
    - user: keystone
    - group: keystone
    - mode: "0700"
{%- endfor %}

keystone_fernet_setup:
  cmd.run:
    - name: keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    - creates: /etc/keystone/fernet-keys/0
    - require:
      - file: keystone_key_dir_1

keystone_credential_setup:
  cmd.run:
    - name: keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
    - creates: /etc/keystone/credential-keys/0
    - require:
      - file: keystone_key_dir_2

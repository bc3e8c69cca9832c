# Fernet and credential keys, created once (kept in the keys volume).
keystone_fernet_setup:
  cmd.run:
    - name: keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    - creates: /etc/keystone/fernet-keys/0

keystone_credential_setup:
  cmd.run:
    - name: keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
    - creates: /etc/keystone/credential-keys/0

# Idempotent: db_sync only migrates what is missing.
keystone_db_sync:
  cmd.run:
    - name: keystone-manage db_sync
    - runas: keystone

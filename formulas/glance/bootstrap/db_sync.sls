glance_db_sync:
  cmd.run:
    - name: glance-manage db_sync
    - runas: glance

cinder_db_sync:
  cmd.run:
    - name: cinder-manage db sync
    - runas: cinder

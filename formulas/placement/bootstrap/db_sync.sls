placement_db_sync:
  cmd.run:
    - name: placement-manage db sync
    - runas: placement

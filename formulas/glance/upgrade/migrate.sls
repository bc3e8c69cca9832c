# Rolling upgrade, phase 2 of 3: the new release's data migrations (it refuses to run
# before expand). Idempotent: migrated rows are not migrated again.
glance_db_migrate:
  cmd.run:
    - name: glance-manage db migrate
    - runas: glance

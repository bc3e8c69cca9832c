# Rolling upgrade, phase 2 of 3: data migrations. A no-op since keystone moved to
# alembic (Yoga: "Data migrations are no longer supported with alembic"), kept so every
# formula's upgrade has the same three phases. Idempotent.
keystone_db_migrate:
  cmd.run:
    - name: keystone-manage db_sync --migrate
    - runas: keystone

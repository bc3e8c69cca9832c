# Rolling upgrade, phase 1 of 3, run with the NEW release's image before its first
# instance starts: adds what the new release needs (new tables, columns, constraints)
# while the old release keeps serving on the same database. The old code must not run
# keystone-manage against the expanded database (its alembic tree lacks the revisions).
# Idempotent: alembic applies only the missing expand revisions; a re-run is a no-op.
# (`db_sync --check` is no guard here: keystone 27.0.0 answers 0 before any expand,
# Launchpad bug 2080542, fixed in 27.0.1.)
keystone_db_expand:
  cmd.run:
    - name: keystone-manage db_sync --expand
    - runas: keystone

# Rolling upgrade, phase 1 of 3, run with the NEW release's image before its first
# instance starts: adds what the new release needs while the old release keeps serving
# (MySQL/MariaDB only; glance calls its rolling upgrades experimental). Idempotent: an
# expanded (or fully upgraded) database prints that nothing is needed and exits 0.
glance_db_expand:
  cmd.run:
    - name: glance-manage db expand
    - runas: glance

# Rolling upgrade, phase 3 of 3, once no instance of the old release runs: drops what
# only the old release used (it refuses to run before expand and migrate). Idempotent:
# a contracted database prints that it is up to date and exits 0.
glance_db_contract:
  cmd.run:
    - name: glance-manage db contract
    - runas: glance

# Rolling upgrade, phase 3 of 3, once no instance of the old release runs: drops what
# only the old release used. keystone refuses to contract before expand ("You are
# attempting to upgrade contract ahead of expand"). Idempotent: a contracted database
# has nothing left to apply.
keystone_db_contract:
  cmd.run:
    - name: keystone-manage db_sync --contract
    - runas: keystone

# The API database, cell0's mapping, cell1 (its database and message queue: nova.conf's
# [database] and transport_url) and both cells' schemas. Each step is idempotent but
# create_cell, which fails (exit 2) when cell1 exists and makes a second cell1 when an
# address changed: it runs only when no cell1 is listed (an address change is an
# `update_cell`, not handled here).
nova_db_sync:
  cmd.run:
    - name: |
        set -e
        nova-manage api_db sync
        nova-manage cell_v2 map_cell0
        if ! nova-manage cell_v2 list_cells | grep -q ' cell1 '; then
            nova-manage cell_v2 create_cell --name cell1 --verbose
        fi
        nova-manage db sync
    - runas: nova
    - shell: /bin/sh

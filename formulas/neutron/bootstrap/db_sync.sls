# Idempotent: at the head already, nothing to do (rc 0). "heads": neutron's expand and
# contract branches both (a plain upgrade, not a rolling one).
neutron_db_sync:
  cmd.run:
    - name: >-
        neutron-db-manage --config-file /etc/neutron/neutron.conf
        --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads
    - runas: neutron

# Map the compute hosts that run now to cell1 (formula.yml: after nova-compute is healthy).
# Idempotent: a mapped host is left alone.
nova_discover_hosts:
  cmd.run:
    - name: nova-manage cell_v2 discover_hosts --verbose
    - runas: nova

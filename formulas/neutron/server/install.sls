# neutron-server itself is in neutron-common (the common layer): Debian's neutron-server
# package would add neutron-api (uwsgi) and neutron-rpc-server, which one eventlet
# neutron-server replaces. The database driver of [database] connection.
neutron_server_packages:
  pkg.installed:
    - pkgs: [python3-pymysql]

mariadb_packages:
  pkg.installed:
    - pkgs: [mariadb-server, mariadb-client]

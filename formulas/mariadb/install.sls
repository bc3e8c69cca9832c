# Packages only: no pillar, no secrets, no service started (the image build runs this).
# galera-4 (the wsrep provider), rsync and socat (state transfers) come with
# mariadb-server; named here because a Galera member needs them.
mariadb_packages:
  pkg.installed:
    - pkgs: [mariadb-server, mariadb-client, galera-4, rsync]

# The container's command, health check and API check (formula.yml): a Galera member
# decides at each start whether it starts the cluster or joins it. No secret in it.
mariadb_server_script:
  file.managed:
    - name: /usr/local/lib/saline/mariadb-server.py
    - source: salt://mariadb/files/server.py
    - makedirs: true
    - mode: "0644"

memcached_packages:
  pkg.installed:
    - pkgs: [memcached]

# The API check (formula.yml api_check): `stats` over memcached's own protocol.
memcached_api_check:
  file.managed:
    - name: /usr/local/lib/saline/memcached-api-check.py
    - source: salt://memcached/files/api_check.py
    - makedirs: true
    - mode: "0644"

# The layer every nova image starts from (formula.yml common): python3-nova and its
# hundreds of dependencies, once. Packages only: no pillar, no secrets, no service.
nova_common_packages:
  pkg.installed:
    - pkgs: [nova-common, python3-pymysql]

# The checks every nova service runs (formula.yml health and api_check): no secret in
# them, they read the pillar at run time.
nova_checks:
  file.managed:
    - names:
      - /usr/local/lib/saline/openstack-rpc-check.py:
        - source: salt://openstack/files/rpc_check.py
      - /usr/local/lib/saline/openstack-api-check.py:
        - source: salt://openstack/files/api_check.py
    - makedirs: true
    - mode: "0644"

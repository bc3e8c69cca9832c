# The layer every cinder image starts from (formula.yml common). Packages only.
# cinder-common's debconf script runs `hostname -i` (../shared/platform-notes.md).
cinder_common_packages:
  pkg.installed:
    - pkgs: [cinder-common, python3-pymysql]

# The checks every cinder service runs (formula.yml health and api_check).
cinder_checks:
  file.managed:
    - names:
      - /usr/local/lib/saline/openstack-rpc-check.py:
        - source: salt://openstack/files/rpc_check.py
      - /usr/local/lib/saline/openstack-api-check.py:
        - source: salt://openstack/files/api_check.py
    - makedirs: true
    - mode: "0644"

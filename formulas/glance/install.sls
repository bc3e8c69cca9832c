glance_packages:
  pkg.installed:
    - pkgs: [glance-api, python3-pymysql, python3-openstackclient]

# The API check (formula.yml api_check; the openstack library's): no secret in it, it
# reads the pillar at run time.
glance_api_check:
  file.managed:
    - name: /usr/local/lib/saline/openstack-api-check.py
    - source: salt://openstack/files/api_check.py
    - makedirs: true
    - mode: "0644"

# Packages only: no pillar, no secrets, no service started (the image build runs this).
placement_packages:
  pkg.installed:
    - pkgs: [placement-api, uwsgi-core, uwsgi-plugin-python3, python3-pymysql]

# The API check (formula.yml api_check; the openstack library's): no secret in it, it
# reads the pillar at run time.
placement_api_check:
  file.managed:
    - name: /usr/local/lib/saline/openstack-api-check.py
    - source: salt://openstack/files/api_check.py
    - makedirs: true
    - mode: "0644"

# Packages only: no pillar, no secrets, no service started (the image build runs this).
keystone_packages:
  pkg.installed:
    - pkgs: [keystone, uwsgi-core, uwsgi-plugin-python3, python3-pymysql, python3-openstackclient]

# The API check (formula.yml api_check): no secret in it, it reads the pillar at run time.
keystone_api_check:
  file.managed:
    - name: /usr/local/lib/saline/keystone-api-check.py
    - source: salt://keystone/files/api_check.py
    - makedirs: true
    - mode: "0644"

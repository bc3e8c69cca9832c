# Packages only: no pillar, no secrets, no service started (the image build runs this).
keystone_packages:
  pkg.installed:
    - pkgs: [keystone, uwsgi-core, uwsgi-plugin-python3, python3-pymysql, python3-openstackclient]

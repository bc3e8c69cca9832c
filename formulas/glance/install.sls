glance_packages:
  pkg.installed:
    - pkgs: [glance-api, python3-pymysql, python3-openstackclient]

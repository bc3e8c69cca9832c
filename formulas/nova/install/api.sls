# The compute and metadata APIs under uwsgi (nova-api ships both WSGI scripts' inis;
# saline writes its own).
nova_api_packages:
  pkg.installed:
    - pkgs: [nova-api, uwsgi-core, uwsgi-plugin-python3]

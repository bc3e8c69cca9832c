cinder_api_packages:
  pkg.installed:
    - pkgs: [cinder-api, uwsgi-core, uwsgi-plugin-python3]

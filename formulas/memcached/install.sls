memcached_packages:
  pkg.installed:
    - pkgs: [memcached]

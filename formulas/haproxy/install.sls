haproxy_packages:
  pkg.installed:
    - pkgs: [haproxy]

nova_conductor_packages:
  pkg.installed:
    - pkgs: [nova-conductor]

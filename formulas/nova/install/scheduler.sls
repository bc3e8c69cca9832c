nova_scheduler_packages:
  pkg.installed:
    - pkgs: [nova-scheduler]

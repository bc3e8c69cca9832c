cinder_scheduler_packages:
  pkg.installed:
    - pkgs: [cinder-scheduler]

rabbitmq_packages:
  pkg.installed:
    - pkgs: [rabbitmq-server]

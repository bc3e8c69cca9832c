# Packages only: no pillar, no secrets, no service started (the image build runs this).
rabbitmq_packages:
  pkg.installed:
    - pkgs: [rabbitmq-server]

# The API check (formula.yml): the node's listeners, and for a member of a cluster the
# cluster's state. No secret in it.
rabbitmq_check_script:
  file.managed:
    - name: /usr/local/lib/saline/rabbitmq-check.py
    - source: salt://rabbitmq/files/check.py
    - makedirs: true
    - mode: "0644"

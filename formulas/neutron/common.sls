# The layer every neutron image starts from (formula.yml common): packages only, no
# pillar, no secrets, no service started. neutron-common holds every binary (server and
# agents) and python3-neutron; its postinst creates the neutron user, so every image of
# the formula has the same one.
neutron_common_packages:
  pkg.installed:
    - pkgs: [neutron-common, python3-neutron]

# The checks (formula.yml health and api_check): no secret in them, they read the pillar
# (or the rendered config) at run time.
neutron_api_check:
  file.managed:
    - name: /usr/local/lib/saline/openstack-api-check.py
    - source: salt://openstack/files/api_check.py
    - makedirs: true
    - mode: "0644"

neutron_agent_check:
  file.managed:
    - name: /usr/local/lib/saline/neutron-agent-check.py
    - source: salt://neutron/files/agent_check.py
    - makedirs: true
    - mode: "0644"

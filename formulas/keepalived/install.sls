# Packages and scripts only: no pillar, no secrets, no service started (the image build
# runs this). keepalived 2.2.7 (Debian 12) depends on iproute2, which the checks use.
keepalived_packages:
  pkg.installed:
    - pkgs: [keepalived]

# The user keepalived runs its track and notify scripts as (global_defs script_user):
# not root, though keepalived itself needs NET_ADMIN and NET_RAW.
keepalived_script_user:
  user.present:
    - name: keepalived_script
    - system: true
    - createhome: false
    - home: /nonexistent
    - shell: /usr/sbin/nologin

# The track script (does a local HTTP server answer?), the notify script (each VRRP
# instance's state, for the checks) and the health and API check. Root's and writable by
# no one else: keepalived runs scripts only then (enable_script_security).
keepalived_check_http:
  file.managed:
    - name: /usr/local/lib/saline/keepalived-check-http
    - source: salt://keepalived/files/check_http.sh
    - makedirs: true
    - mode: "0755"

keepalived_notify:
  file.managed:
    - name: /usr/local/lib/saline/keepalived-notify
    - source: salt://keepalived/files/notify.sh
    - makedirs: true
    - mode: "0755"

keepalived_state_check:
  file.managed:
    - name: /usr/local/lib/saline/keepalived-state.py
    - source: salt://keepalived/files/state.py
    - makedirs: true
    - mode: "0644"

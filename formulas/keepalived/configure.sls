keepalived_config:
  file.managed:
    - name: /etc/keepalived/keepalived.conf
    - source: salt://keepalived/files/keepalived.conf.j2
    - template: jinja
    # It holds the VRRP password.
    - mode: "0600"
    - makedirs: true

# Where the notify script (run as keepalived_script) writes each instance's state.
keepalived_state_dir:
  file.directory:
    - name: /run/keepalived-state
    - user: keepalived_script
    - group: root
    - mode: "0755"

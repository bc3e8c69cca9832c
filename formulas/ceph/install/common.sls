# The layer every ceph image starts from (formula.yml common): ceph-base (monmaptool,
# crushtool, ceph-bluestore-tool's neighbours) and ceph-common (the ceph, rados and rbd
# clients and their Python bindings), which the monitor, the manager and the OSD all
# depend on. Packages only: no pillar, no secrets, no service started. Debian creates
# the ceph user with its fixed uid (64045, ceph-common's postinst).
ceph_common_packages:
  pkg.installed:
    - pkgs: [ceph-base, ceph-common]

# The launcher (formula.yml command), the checks (health, api_check, status) and the
# bootstrap script: no secret in them, they read the pillar or the rendered files at
# run time.
ceph_scripts:
  file.managed:
    - names:
      - /usr/local/lib/saline/ceph-run:
        - source: salt://ceph/files/ceph-run.sh
        - mode: "0755"
      - /usr/local/lib/saline/ceph-check.py:
        - source: salt://ceph/files/check.py
        - mode: "0644"
      - /usr/local/lib/saline/ceph-bootstrap.py:
        - source: salt://ceph/files/bootstrap.py
        - mode: "0644"
    - makedirs: true

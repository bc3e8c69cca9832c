# The manager (ceph-mgr: PG statistics, health of the PGs, the pg autoscaler) with its
# core Python modules; not the dashboard (ceph-mgr-dashboard, a Suggests).
ceph_mgr_packages:
  pkg.installed:
    - pkgs: [ceph-mgr, ceph-mgr-modules-core]

# The monitor (ceph-mon: the cluster maps, in a RocksDB store under /var/lib/ceph/mon).
ceph_mon_packages:
  pkg.installed:
    - pkgs: [ceph-mon]

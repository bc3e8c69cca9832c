# cinder-volume with the RBD driver: Ceph's client libraries (cinder only suggests them).
cinder_volume_packages:
  pkg.installed:
    - pkgs: [cinder-volume, ceph-common, python3-rados, python3-rbd]

# The OSD (ceph-osd, with ceph-bluestore-tool). Its Depends bring lvm2 and ceph-volume,
# which this formula does not use: the OSD's BlueStore lives in a file (no
# device-mapper here), made by `ceph-osd --mkfs` (bootstrap/osd_mkfs.sls).
ceph_osd_packages:
  pkg.installed:
    - pkgs: [ceph-osd]

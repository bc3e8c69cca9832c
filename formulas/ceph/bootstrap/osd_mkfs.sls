{%- from "ceph/map.jinja" import common, osd with context %}
# The OSD, once the monitors run (files/bootstrap.py osd-mkfs): `osd new` with the
# pillar's id and uuid (the same pair again changes nothing; an id another uuid holds
# fails), then `ceph-osd --mkfs` of a BlueStore in a file (ceph.conf's [osd.ID]) unless
# its data folder holds that OSD already.
ceph_osd_mkfs:
  cmd.run:
    - name: >-
        python3 /usr/local/lib/saline/ceph-bootstrap.py osd-mkfs
        --id {{ osd['id'] | string | quote }} --uuid {{ osd['uuid'] | string | quote }}
        --fsid {{ common['fsid'] | string | quote }}

{%- from "ceph/map.jinja" import common, members, mon_id with context %}
# The monitor's store, before the monitor first starts (files/bootstrap.py mon-mkfs):
# the initial monitor map of ceph:common:members and the cluster's fsid, then
# `ceph-mon --mkfs`. A monitor that has a store is left alone; one of another cluster
# (another fsid) fails the task, naming both.
ceph_mon_mkfs:
  cmd.run:
    - name: >-
        python3 /usr/local/lib/saline/ceph-bootstrap.py mon-mkfs
        --id {{ mon_id | quote }} --fsid {{ common['fsid'] | string | quote }}
        {%- for m in members %} --member {{ (m['name'] ~ '=' ~ m['host']) | quote }}{% endfor %}

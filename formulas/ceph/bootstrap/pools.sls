{%- from "ceph/map.jinja" import pools with context %}
# The pools of ceph:setup:pool, once the OSD runs (files/bootstrap.py pools): each made
# with its pg_num (one that exists is kept), its size where the pillar sets one, its
# application enabled (rbd: `rbd pool init`). The pillar reaches the script on its stdin.
{%- if pools %}
ceph_pools:
  cmd.run:
    - name: saline-entrypoint with-pillar ceph:setup:pool python3 /usr/local/lib/saline/ceph-bootstrap.py pools
{%- else %}
ceph_pools:
  test.succeed_without_changes:
    - comment: ceph:setup:pool names no pool
{%- endif %}

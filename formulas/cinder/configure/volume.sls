{%- from "cinder/map.jinja" import cinder_conf with context %}
{{ cinder_conf('volume') }}

cinder_ceph_conf:
  file.managed:
    - name: /etc/ceph/ceph.conf
    - source: salt://cinder/files/ceph.conf.j2
    - template: jinja
    - makedirs: true
    - mode: "0644"

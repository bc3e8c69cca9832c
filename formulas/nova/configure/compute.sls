# nova.conf of nova-compute from nova:compute: no database (a compute node never holds
# the database's credentials), the libvirt driver on QEMU.
{%- from "nova/map.jinja" import nova_conf with context %}
{{ nova_conf('compute') }}

nova_lock_path:
  file.directory:
    - name: /var/lib/nova/tmp
    - makedirs: true

# libvirtd and QEMU in a privileged container of their own, sharing /run/libvirt and the
# instances folder with nova-compute.
nova_libvirtd_conf:
  file.managed:
    - name: /etc/libvirt/libvirtd.conf
    - source: salt://nova/files/libvirtd.conf
    - mode: "0644"

nova_qemu_conf:
  file.managed:
    - name: /etc/libvirt/qemu.conf
    - source: salt://nova/files/qemu.conf
    - mode: "0600"

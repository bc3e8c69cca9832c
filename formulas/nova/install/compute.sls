# nova-compute with the libvirt driver, and libvirt with QEMU (nova-compute-kvm pulls
# libvirt-daemon-system and qemu-system-x86, which holds TCG too; nova-compute-qemu pulls
# every QEMU architecture: 980 MB against 628 MB, measured). The same image runs
# libvirtd (service nova-libvirt): one set of users and paths for both.
nova_compute_packages:
  pkg.installed:
    - pkgs: [nova-compute, nova-compute-kvm]

# nova-libvirt's command (formula.yml): no pillar in it.
nova_libvirtd_script:
  file.managed:
    - name: /usr/local/lib/saline/nova-libvirtd.sh
    - source: salt://nova/files/libvirtd.sh
    - makedirs: true
    - mode: "0755"

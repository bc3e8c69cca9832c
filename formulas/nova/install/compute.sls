# nova-compute with the libvirt driver, and libvirt with QEMU (nova-compute-kvm pulls
# libvirt-daemon-system and qemu-system-x86, which holds TCG too; nova-compute-qemu pulls
# every QEMU architecture: 980 MB against 628 MB, measured). The same image runs
# libvirtd (service nova-libvirt): one set of users and paths for both.
nova_compute_packages:
  pkg.installed:
    - pkgs: [nova-compute, nova-compute-kvm]

neutron_metadata_packages:
  pkg.installed:
    - pkgs: [neutron-metadata-agent]

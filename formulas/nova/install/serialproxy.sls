# nova-consoleproxy holds every console proxy (novnc, serial, spice); saline runs the
# serial one (docs/formulas.md, "Nova": the console log and a console without VNC).
nova_consoleproxy_packages:
  pkg.installed:
    - pkgs: [nova-consoleproxy]

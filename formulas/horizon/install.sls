# Packages only: no pillar, no secrets, no service started (the image build runs this).
# openstack-dashboard's postinst collects the static files and compresses them offline
# (manage.py collectstatic, compress) for the settings present now: Debian's snippets
# (WEBROOT "/", the default theme). saline's settings leave that context alone
# (files/local_settings.py.j2), so the bundle built here serves as it is.
# uwsgi serves the shipped wsgi.py and the static files: no apache
# (openstack-dashboard-apache is not installed).
horizon_packages:
  pkg.installed:
    - pkgs: [openstack-dashboard, uwsgi-core, uwsgi-plugin-python3]

# uwsgi's master FIFO and stats socket (a reload: saline-entrypoint uwsgi-reload): the
# service runs as www-data, as Debian's apache site does.
horizon_uwsgi_dir:
  file.directory:
    - name: /var/lib/openstack-dashboard/uwsgi
    - user: www-data
    - group: www-data
    - mode: "0750"
    - makedirs: true

# The API check (formula.yml api_check): a real login. No secret in it: it reads the
# pillar at run time.
horizon_api_check:
  file.managed:
    - name: /usr/local/lib/saline/horizon-api-check.py
    - source: salt://horizon/files/api_check.py
    - makedirs: true
    - mode: "0644"

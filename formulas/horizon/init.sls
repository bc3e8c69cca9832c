include:
  - horizon.install
  - horizon.configure
{%- if not grains.get('noservices') %}

horizon_service:
  cmd.run:
    - name: uwsgi --ini /etc/openstack-dashboard/horizon-uwsgi.ini --daemonize /var/lib/openstack-dashboard/uwsgi/uwsgi.log
    # The bracket keeps pgrep from matching this check's own shell.
    - unless: pgrep -f '/etc/openstack-dashboard/[h]orizon-uwsgi.ini'
    - runas: www-data
{%- endif %}

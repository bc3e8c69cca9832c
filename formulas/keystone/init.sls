include:
  - keystone.install
  - keystone.configure
{%- if not grains.get('noservices') %}

keystone_service:
  cmd.run:
    - name: uwsgi --ini /etc/keystone/keystone-uwsgi.ini --daemonize /var/log/keystone/uwsgi.log
    # The bracket keeps pgrep from matching this check's own shell.
    - unless: pgrep -f '/etc/keystone/[k]eystone-uwsgi.ini'
    - runas: keystone
{%- endif %}

{%- set server = pillar['glance']['server'] %}
{%- set identity = server['identity'] %}
{%- set url = 'http://' ~ server['bind']['public_address'] ~ ':' ~ server['bind']['port'] %}
# Idempotent: the glance service user, its role, the image service and its endpoints.
glance_register:
  cmd.run:
    - name: |
        set -e
        openstack user show {{ identity['user'] }} >/dev/null 2>&1 ||
          openstack user create --domain default --password "$SALINE_GLANCE_PASSWORD" {{ identity['user'] }}
        openstack user set --password "$SALINE_GLANCE_PASSWORD" {{ identity['user'] }}
        openstack project show {{ identity['tenant'] }} >/dev/null 2>&1 ||
          openstack project create --domain default {{ identity['tenant'] }}
        openstack role add --project {{ identity['tenant'] }} --user {{ identity['user'] }} admin
        openstack service show image >/dev/null 2>&1 ||
          openstack service create --name glance image
        for iface in public internal admin; do
          openstack endpoint list --service image --interface $iface -f value -c ID | grep -q . ||
            openstack endpoint create --region {{ identity['region'] }} image $iface {{ url }}
        done
    - env:
      - SALINE_GLANCE_PASSWORD: {{ identity['password'] | yaml_encode }}
      - OS_AUTH_URL: {{ identity['auth_url'] }}
      - OS_USERNAME: {{ identity['admin_user'] }}
      - OS_PASSWORD: {{ identity['admin_password'] | yaml_encode }}
      - OS_PROJECT_NAME: {{ identity['admin_project'] }}
      - OS_USER_DOMAIN_NAME: Default
      - OS_PROJECT_DOMAIN_NAME: Default
      - OS_IDENTITY_API_VERSION: "3"
    - output_loglevel: quiet

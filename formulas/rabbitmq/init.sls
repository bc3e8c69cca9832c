include:
  - rabbitmq.install
  - rabbitmq.configure
{%- if not grains.get('noservices') %}

rabbitmq_service:
  service.running:
    - name: rabbitmq-server
    - enable: true
    - watch:
      - file: rabbitmq_config
      - file: rabbitmq_env
{%- endif %}

rabbitmq_config:
  file.managed:
    - name: /etc/rabbitmq/rabbitmq.conf
    - source: salt://rabbitmq/files/rabbitmq.conf.j2
    - template: jinja
    - mode: "0644"

rabbitmq_env:
  file.managed:
    - name: /etc/rabbitmq/rabbitmq-env.conf
    - source: salt://rabbitmq/files/rabbitmq-env.conf.j2
    - template: jinja
    - mode: "0644"

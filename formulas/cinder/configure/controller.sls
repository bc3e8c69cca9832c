{%- from "cinder/map.jinja" import cinder_conf with context %}
{{ cinder_conf('controller') }}

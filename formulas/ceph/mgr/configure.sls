{%- from "ceph/map.jinja" import conf, daemon_files, data, mgr_id with context %}
{#- With auth none the manager keeps nothing in its data folder (a keyring otherwise);
    it must exist all the same. #}
{{ conf(['mgr']) }}
{{ daemon_files('mgr', mgr_id, data['mgr']) }}

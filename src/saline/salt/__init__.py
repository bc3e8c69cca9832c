"""The one place saline talks to Salt.

* :mod:`.runner`: Salt in-process (rendering config files) and ``salt-call`` / ``salt-ssh``
  (applying states to a host).
* ``pillar/saline.py`` and ``tops/saline.py``: an ext_pillar and a master_tops module that
  let any Salt master use a saline model as its pillar and top; Salt finds them through
  the ``salt.loader`` entry point (:func:`.loader.salt_dirs`), so nothing is copied into
  ``extension_modules`` (which masterless runs would clean out).
"""

"""The one place saline talks to Salt.

* :mod:`.runner`: Salt in-process (rendering config files: :class:`.runner.RenderSession`
  renders many nodes with their pillars in memory) and ``salt-call`` / ``salt-ssh``
  (applying states to a host).
* :mod:`.rendercache`: rendered config files kept on disk by a digest of their inputs.
* ``pillar/saline.py`` and ``tops/saline.py``: an ext_pillar and a master_tops module that
  let any Salt master use a saline model as its pillar and top; Salt finds them through
  the ``salt.loader`` entry point (:func:`.loader.salt_dirs`), so nothing is copied into
  ``extension_modules`` (which masterless runs would clean out).
"""

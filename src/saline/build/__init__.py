"""Building images: Debian root file systems (:mod:`.rootfs`)."""

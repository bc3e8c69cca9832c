"""Running containers: the podman chokepoint (:mod:`.podman`)."""

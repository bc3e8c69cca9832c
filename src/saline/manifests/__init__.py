"""Documents derived from a release: compose files for local stacks, Kubernetes objects.
Pure."""

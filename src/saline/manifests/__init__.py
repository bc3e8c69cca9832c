"""Documents derived from a model: compose files for local stacks. Pure."""

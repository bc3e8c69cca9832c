import os
import sys

# tests/ holds helpers (the reference adapter, model generators) imported by test modules.
sys.path.insert(0, os.path.dirname(__file__))

# The model engine reads no environment (load_model takes its cache explicitly), but the
# CLI's settings do: keep the model file cache of CLI runs in tests away from the user's home.
os.environ.setdefault(
    "SALINE_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache-tests")
)

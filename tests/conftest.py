import os
import sys

# tests/ holds helpers (the reference adapter, model generators) imported by test modules.
sys.path.insert(0, os.path.dirname(__file__))

# Keep the model file cache of test runs away from the user's home.
os.environ.setdefault(
    "SALINE_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache-tests")
)

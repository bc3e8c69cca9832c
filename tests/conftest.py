import os
import sys

# tests/ holds helpers (the reference adapter, model generators) imported by test modules.
sys.path.insert(0, os.path.dirname(__file__))

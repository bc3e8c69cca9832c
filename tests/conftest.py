import os
import signal
import sys

# tests/ holds helpers (the reference adapter, model generators) imported by test modules.
sys.path.insert(0, os.path.dirname(__file__))

# The model engine reads no environment (load_model takes its cache explicitly), but the
# CLI's settings do: keep the model file cache of CLI runs in tests away from the user's home.
os.environ.setdefault(
    "SALINE_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".cache-tests")
)

# The Ctrl-C tests send SIGINT to this process and to Pythons it starts. A runner that
# starts the suite in the background of a non-interactive shell (`cmd &`) hands it SIGINT
# ignored, which exec passes on to every child, so no KeyboardInterrupt would ever come
# (seen: three Ctrl-C tests failed in a suite started that way). Give SIGINT the meaning
# a terminal gives it; a handler, unlike "ignored", is reset to the default at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

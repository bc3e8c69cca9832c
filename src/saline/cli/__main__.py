"""``python -m saline.cli``: the same as the ``saline`` command."""

import sys

from . import main

sys.exit(main())

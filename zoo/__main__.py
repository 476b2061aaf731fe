"""``python -m zoo ...`` is the ``zoo`` command (for environments without the console script on PATH)."""

import sys

from zoo.app.cli import main

sys.exit(main())

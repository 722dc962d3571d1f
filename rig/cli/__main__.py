"""``python -m rig.cli``: the same as the ``stackrig`` command."""

import sys

from rig.cli import main

sys.exit(main())

"""``python -m flowforge``: the command line, as ``flowforge``."""

import sys

from .cli.main import main

sys.exit(main())

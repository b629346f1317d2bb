"""``python -m aiofinaccess``."""

import sys

from .cli import main

sys.exit(main())

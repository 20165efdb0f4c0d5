"""``python -m ttsq``."""

import sys

from .cli import main

sys.exit(main())

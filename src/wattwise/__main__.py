"""``python -m wattwise`` is the ``wattwise`` command."""

from __future__ import annotations

import sys

from wattwise.cli import main

sys.exit(main())

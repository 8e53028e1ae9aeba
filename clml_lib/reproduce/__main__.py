"""``python -m clml_lib.reproduce``: see :mod:`clml_lib.reproduce.cli`."""

import sys

from .cli import main

sys.exit(main())

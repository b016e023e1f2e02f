"""``python -m miniconv ...`` is the ``miniconv`` command."""

import sys

from .cli import main

sys.exit(main())

"""``python -m rtrec_native.cli``: the ``rtrec`` command."""

import sys

from . import main

sys.exit(main())

"""``python -m ml.ops.cli``: the same as the ``tenantflow`` command."""

import sys

from ml.ops.cli import main

sys.exit(main())

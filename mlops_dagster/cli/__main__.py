"""``python -m mlops_dagster.cli``: the ``mlops`` command."""

import sys

from . import console

sys.exit(console())

"""``python -m mlops_dagster.serving [SETTINGS_JSON]``: run the local serving gateway in the
foreground, with the target's settings or the exact settings of the process that started it."""

import logging
import sys
from pathlib import Path

from ..settings import Settings, load_settings
from .server import serve

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = (Settings.model_validate_json(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1
            else load_settings())
serve(settings)

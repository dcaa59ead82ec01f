"""``python -m mlops_dagster.serving``: run the local serving gateway in the foreground."""

import logging

from ..settings import load_settings
from .server import serve

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
serve(load_settings())

"""``python -m mlops_dagster.serving [PROJECT_JSON]``: run the local serving gateway in the
foreground, with the target's use cases or the exact project of the process that started it."""

import logging
import sys
from pathlib import Path

from ..settings import ConfigError, Project, load_project
from .server import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    project = (
        Project.model_validate_json(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else load_project()
    )
    try:
        serve(project)
    except ConfigError as exc:  # refused to start (e.g. no token on a reachable address): say why, briefly
        print(f"serving gateway not started: {exc}", file=sys.stderr)
        sys.exit(2)


# Guarded: the gateway's model worker processes are spawned, and a spawned process imports this
# module again (as __mp_main__) before it runs its own work.
if __name__ == "__main__":
    main()

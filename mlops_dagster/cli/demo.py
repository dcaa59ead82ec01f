"""Demo data: the shipped demos' synthetic landing files, and the outcomes of the customers they hold."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path


def usable_demo(settings):
    """The use case's demo generator, if it has one and its contract is still the generator's."""
    from ..data import demo

    found = demo(settings.demo) if settings.demo else None
    return found if found and list(settings.dataset.columns) == found.columns else None


def generate(
    rows: int | None,
    seed: int,
    drifted: bool,
    name: str | None,
    landing: str | None = None,
    use_case: str | None = None,
    outcomes: bool = False,
    changed_world: bool = False,
) -> Path:
    """Write a demo's synthetic landing file into its use case's landing folder (default: the first
    use case with a demo), or with ``outcomes`` an outcome file for the customers such a file held
    into its ground-truth folder; returns its path."""
    from ..resources.migration import check_home
    from ..settings import ConfigError, load_project

    project = load_project()
    check_home(project)
    candidates = project.select(use_case) if use_case else project.use_cases
    settings = next((u for u in candidates if usable_demo(u)), None)
    if settings is None:
        named = ", ".join(u.name for u in candidates)
        raise ConfigError(
            f"mlops generate writes the shipped demos' data, and {named} has no demo generator: put "
            f"the use case's own files in its landing folder ({candidates[0].landing_path})"
        )
    if outcomes or changed_world:
        return write_outcomes(settings, rows, seed, drifted, changed_world, name)
    return write_demo(settings, rows, seed, drifted, name, landing)


def write_outcomes(
    settings, rows: int | None, seed: int, drifted: bool, changed: bool, name: str | None
) -> Path:
    """Outcomes, observed now, for the customers of the demo file written with the same rows, seed
    and drifted flag, into the use case's ground-truth folder."""
    from datetime import datetime

    from ..data import demo
    from ..settings import ConfigError

    generator = demo(settings.demo)
    if generator.outcomes is None or settings.monitoring.ground_truth.time_column != "label_time":
        raise ConfigError(
            f"the {settings.name} demo has no outcome generator: put outcome files ({settings.dataset.key}, "
            f"{settings.dataset.label}, {settings.monitoring.ground_truth.time_column}) in "
            f"{settings.ground_truth_path}"
        )
    rows = rows or generator.rows
    folder = Path(settings.ground_truth_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or f"outcomes_{'changed_world_' if changed else ''}{rows}_seed{seed}.csv"
    observed = datetime.now(UTC).isoformat(timespec="seconds")
    return generator.outcomes(folder / name, rows, seed, drifted, changed, observed)


def write_demo(
    settings, rows: int | None, seed: int, drifted: bool, name: str | None = None, landing: str | None = None
) -> Path:
    """A landing file of ``settings``' demo (its landing folder unless ``landing`` says otherwise)."""
    from ..data import demo

    generator = demo(settings.demo or "telco")
    rows = rows or generator.rows
    landing_dir = Path(landing or settings.landing_path)
    landing_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"{settings.dataset.name}_{'drifted_' if drifted else ''}{rows}_seed{seed}.csv"
    return generator.write(landing_dir / name, rows, seed, drifted)

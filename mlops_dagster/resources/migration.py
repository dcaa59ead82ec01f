"""The local home's format (``MLOPS_HOME``): the check before a run, and ``mlops migrate``, which
moves a home of the previous format forward.

Format 1, the release before use cases, kept every table in one fixed schema (``FORMAT_1_SCHEMA``:
``lakehouse/<catalog>/<that schema>/<table>``) and the landing files flat in ``landing/``. Format 2, today's,
keeps them in the project's schema (``mlops`` unless configured) and each use case's landing files in
``landing/<use case>/`` (outcome files in its ``ground_truth/``), and says so in ``format.json``.
Today's code reads a format-1 home as empty, so a run on one refuses to start and names the command
that moves it. The table names themselves did not change, and a delta-rs table's log names its
files relative to its folder, so moving a table is moving its folder.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import ConfigError
from ..settings.constants import FORMAT_1_SCHEMA, HOME_FORMAT, HOME_FORMAT_FILE, LANDING_LOG

if TYPE_CHECKING:
    from ..settings import Project, Settings

GROUND_TRUTH = "ground_truth"


class HomeFormatError(ConfigError):
    """The home is in another format than this code reads: the message says what to run."""


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path
    use_case: str  # whose it is ("project": shared by every use case)
    rows: int = 1  # a table's rows (a file counts one)


@dataclass
class Plan:
    """What ``mlops migrate`` moves in one home, and what stands in its way."""

    home: Path
    old_tables: Path
    new_tables: Path
    tables: list[Move] = field(default_factory=list)
    files: list[Move] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # found, not moved (said so)
    problems: list[str] = field(default_factory=list)  # nothing moves while there are any

    @property
    def empty(self) -> bool:
        return not (self.tables or self.files)


def home_of(project: Project) -> Path | None:
    """The home holding the project's local state (None: Unity Catalog tables and volumes)."""
    return project.default.root


def recorded_format(home: Path) -> int | None:
    """The format ``format.json`` records (None: no file, a home older than format files or new)."""
    path = home / HOME_FORMAT_FILE
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text())["format"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HomeFormatError(
            f'{path} is not a format file ({exc}): it should read {{"format": {HOME_FORMAT}}}'
        ) from None


def record_format(home: Path) -> Path:
    """Write ``format.json`` whole or not at all (steps of several runs may set a home up at once)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / HOME_FORMAT_FILE
    written = home / f".{HOME_FORMAT_FILE}.{os.getpid()}.{threading.get_ident()}"
    written.write_text(json.dumps({"format": HOME_FORMAT}) + "\n")
    written.replace(path)
    return path


def _newer(home: Path, found: int) -> HomeFormatError:
    return HomeFormatError(
        f"MLOPS_HOME {home} is in format {found}, written by a newer release of mlops_dagster "
        f"(this one reads format {HOME_FORMAT}): upgrade, or use another MLOPS_HOME"
    )


def _previous(home: Path) -> HomeFormatError:
    return HomeFormatError(
        f"MLOPS_HOME {home} is in the previous format (tables in schema {FORMAT_1_SCHEMA}, landing "
        "files flat in landing/), which this release does not read: run `mlops migrate` "
        "to move it forward (`mlops migrate --dry-run` shows what it would move)"
    )


def check_home(project: Project) -> None:
    """Before anything writes: refuse a home this code cannot read, else record today's format in
    a home used for the first time. Nothing to check on a target without a local home."""
    home = home_of(project)
    if home is None:
        return
    found = recorded_format(home)
    if found == HOME_FORMAT:
        return
    if found is not None and found > HOME_FORMAT:
        raise _newer(home, found)
    if found is not None or in_previous_format(project):  # an older format, recorded or found
        raise _previous(home)
    record_format(home)


def check_lakehouse_home(lakehouse_root: str) -> None:
    """The same check when the local lakehouse is set up for a run (runs started from Dagster's UI
    or a sensor, which do not pass through ``mlops run``). The resource knows its folder, not the
    project, so it refuses on its folders' evidence alone: no format file and a Delta table in a
    ``FORMAT_1_SCHEMA`` folder. (A project that configures that schema today and only ever ran
    from the UI is refused too; ``mlops migrate`` then finds nothing to move and records the
    format.) Files flat in ``landing/`` may be format 1's or a use case's own ``landing`` folder:
    then the format is left for ``mlops run`` or ``mlops migrate`` to record."""
    root = Path(lakehouse_root)
    if root.name != "lakehouse":  # a lakehouse folder of its own, not a home's
        return
    home = root.parent
    found = recorded_format(home)
    if found == HOME_FORMAT:
        return
    if found is not None and found > HOME_FORMAT:
        raise _newer(home, found)
    catalogs = [c for c in root.iterdir() if c.is_dir()] if root.is_dir() else []
    landing = home / "landing"
    flat = landing.is_dir() and any(p.is_file() for p in landing.iterdir())
    if found is not None or any(_delta_tables(c / FORMAT_1_SCHEMA) for c in catalogs):
        raise _previous(home)
    if not flat:
        record_format(home)


def in_previous_format(project: Project) -> bool:
    """Format 1's layout is there: a Delta table in the old schema's folder, or a landing file of a
    use case flat in ``landing/``."""
    old, new = _table_folders(project)
    if old != new and any(_delta_tables(old)):
        return True
    return any(_flat_files(project))


def _table_folders(project: Project) -> tuple[Path, Path]:
    shared = project.default
    lakehouse = shared.root / "lakehouse" / shared.catalog
    return lakehouse / FORMAT_1_SCHEMA, lakehouse / shared.schema_


def _delta_tables(folder: Path) -> list[Path]:
    from deltalake import DeltaTable

    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and DeltaTable.is_deltatable(str(p)))


def _landing_use_cases(project: Project) -> list[Settings]:
    """The use cases reading landing files from their default folder, ``landing/<use case>``."""
    return [u for u in project.use_cases if u.landing is None and u.dataset.source is None]


def _landing_root(project: Project) -> Path:
    return Path(project.default.volume_path("landing"))


def _flat_files(project: Project) -> list[Path]:
    """Files directly in ``landing/`` that a use case's ``file_pattern`` matches."""
    root = _landing_root(project)
    patterns = [u.dataset.file_pattern for u in _landing_use_cases(project)]
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_file() and any(fnmatch.fnmatch(p.name, s) for s in patterns)
    )


def rows(table: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(table)).count()


def _owner_of_table(project: Project, table: str) -> str:
    for use in project.use_cases:
        names = use.names
        if table in (names.raw, names.quarantine) or table.startswith(f"{use.name}_"):
            return use.name
    return "project"


def _header_fits(use: Settings, path: Path) -> bool:
    """The CSV file's first line names every column of the use case's contract."""
    options = use.dataset.csv
    if not options.header:
        return False
    try:
        with path.open(encoding=options.encoding, newline="") as handle:
            header = next(csv.reader(handle, delimiter=options.delimiter, quotechar=options.quote), [])
    except (OSError, UnicodeError, csv.Error):
        return False
    return set(use.dataset.columns) <= {h.strip() for h in header}


def _file_owner(project: Project, path: Path, old_tables: Path, forced: str | None) -> Settings | str | None:
    """Whose flat landing file ``path`` is: a use case, a problem (text), or None (not one of
    ``forced``'s files, left in place). Several patterns may match (the shipped demos' are both
    ``*.csv``): the old home's own tables tell, then the file's header against each contract."""
    found = [u for u in _landing_use_cases(project) if fnmatch.fnmatch(path.name, u.dataset.file_pattern)]
    if forced:
        found = [u for u in found if u.name == forced]
        return found[0] if found else None
    if len(found) > 1:
        found = [u for u in found if (old_tables / u.names.raw).is_dir()] or found
    if len(found) > 1 and ".csv" in path.suffixes:
        found = [u for u in found if _header_fits(u, path)] or found
    if len(found) == 1:
        return found[0]
    return (
        f"cannot tell whose landing file landing/{path.name} is (it suits {', '.join(u.name for u in found)}): "
        "name its use case with mlops migrate --use-case NAME"
    )


def _landing_moves(project: Project, plan: Plan, forced: str | None) -> None:
    owners = set()
    for path in _flat_files(project):
        owner = _file_owner(project, path, plan.old_tables, forced)
        if isinstance(owner, str):
            plan.problems.append(owner)
        elif owner is None:
            plan.left.append(f"landing/{path.name} (not a landing file of {forced})")
        else:
            owners.add(owner.name)
            plan.files.append(Move(path, Path(owner.landing_path) / path.name, owner.name))
    outcomes = _landing_root(project) / GROUND_TRUTH
    if not (outcomes.is_dir() and any(p.is_file() for p in outcomes.iterdir())):
        return
    candidates = [forced] if forced else sorted(owners)
    if len(candidates) != 1:
        plan.problems.append(
            f"cannot tell whose outcome files landing/{GROUND_TRUTH}/ holds: name its use case "
            "with mlops migrate --use-case NAME"
        )
        return
    use = project.use_case(candidates[0])
    plan.files += [
        Move(p, Path(use.ground_truth_path) / p.name, use.name)
        for p in sorted(outcomes.iterdir())
        if p.is_file()
    ]


def plan_migration(project: Project, use_case: str | None = None) -> Plan:
    """What migrating the project's home moves, nothing moved yet: every Delta table of the old
    schema into the project's schema, every flat landing file into its use case's folder."""
    old, new = _table_folders(project)
    plan = Plan(project.default.root, old, new)
    if use_case is not None:
        project.use_case(use_case)  # an unknown name is a ConfigError naming the use cases
    if old != new:
        plan.tables = [
            Move(t, new / t.name, _owner_of_table(project, t.name), rows(t)) for t in _delta_tables(old)
        ]
        kept = (
            sorted(p.name for p in old.iterdir() if p not in {m.source for m in plan.tables})
            if old.is_dir()
            else []
        )
        plan.left += [f"{old.relative_to(plan.home)}/{name} (not a Delta table)" for name in kept]
    _landing_moves(project, plan, use_case)
    for move in [*plan.tables, *plan.files]:
        if move.target.exists():
            plan.problems.append(
                f"{move.target} already exists: {move.source.relative_to(plan.home)} would "
                "overwrite it (move or remove one of them, then migrate again)"
            )
    return plan


def _folder(home: Path, path: Path) -> str:
    return f"{path.relative_to(home)}/" if path.is_relative_to(home) else f"{path}/"


def _files_in(folder: Path) -> int:
    return sum(p.is_file() for p in folder.iterdir()) if folder.is_dir() else 0


def _file_groups(plan: Plan) -> dict[tuple[Path, Path], int]:
    """Landing files to move, counted per (from folder, to folder)."""
    groups: dict[tuple[Path, Path], int] = {}
    for move in plan.files:
        key = (move.source.parent, move.target.parent)
        groups[key] = groups.get(key, 0) + 1
    return groups


def describe(plan: Plan) -> str:
    """The plan as ``mlops migrate`` prints it before moving anything: rows per table, files per folder."""
    home, lines = plan.home, [f"MLOPS_HOME {plan.home} is in the previous format (format 1): what moves"]
    if plan.tables:
        lines.append(f"Tables: {_folder(home, plan.old_tables)} -> {_folder(home, plan.new_tables)}")
        lines += [f"  {m.source.name:<40} {m.rows:>10,} rows  ({m.use_case})" for m in plan.tables]
    if plan.files:
        lines.append("Landing files:")
        lines += [
            f"  {_folder(home, source):<28} -> {_folder(home, target):<34} {count:>5} file(s) "
            f"(it holds {_files_in(target)} now)"
            for (source, target), count in _file_groups(plan).items()
        ]
    log = _landing_log(plan)
    if log is not None and plan.files:
        lines.append(
            f"{LANDING_LOG}: {_repointed(log, _moved_paths(plan))} row(s) will name their file's new path "
            "(so the next run does not ingest the moved files again)"
        )
    if plan.left:
        lines += ["Left in place:", *(f"  {left}" for left in plan.left)]
    return "\n".join(lines)


def _landing_log(plan: Plan) -> Path | None:
    """Where the ingestion log is now (in the old schema until the tables move)."""
    from deltalake import DeltaTable

    for path in (plan.new_tables / LANDING_LOG, plan.old_tables / LANDING_LOG):
        if DeltaTable.is_deltatable(str(path)):
            return path
    return None


def _moved_paths(plan: Plan) -> dict[str, str]:
    """Each landing file's path as ingestion logs it (resolved), before and after its move."""
    return {str(m.source.resolve()): str(m.target.resolve()) for m in plan.files}


def _repointed(log: Path, moved: dict[str, str], write: bool = False) -> int:
    """Rows of the ingestion log naming a moved file; with ``write``, a new version of the log
    names the files' new paths instead (the rows stay the same otherwise)."""
    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    data = DeltaTable(str(log)).to_pyarrow_table()
    paths = data.column("file_path").to_pylist()
    now = [moved.get(p, p) for p in paths]
    changed = sum(a != b for a, b in zip(paths, now))
    if write and changed:
        index = data.schema.get_field_index("file_path")
        data = data.set_column(index, data.schema.field(index), pa.array(now, data.schema.field(index).type))
        write_deltalake(
            str(log),
            data,
            mode="overwrite",
            commit_properties=CommitProperties(custom_metadata={"mlops.migrate": "landing files moved"}),
        )
    return changed


def apply(plan: Plan) -> str:
    """Move what ``plan`` says (it has no problems), check every table counts the same rows at its
    new place, and say what is where now."""
    import shutil

    targets = {target: _files_in(target) for _, target in _file_groups(plan)}
    moved = _moved_paths(plan)  # before the moves, while the files are where the log says
    lines = [f"Moved {len(plan.tables)} table(s) and {len(plan.files)} landing file(s):"]
    for move in plan.tables:
        move.target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(move.source), str(move.target))
        after = rows(move.target)
        if after != move.rows:
            raise HomeFormatError(
                f"{move.target} counts {after} rows after the move, {move.rows} before: "
                "nothing else was moved; compare it with a backup before going on"
            )
        lines.append(f"  {move.target.relative_to(plan.home)!s:<60} {after:>10,} rows (was {move.rows:,})")
    # The log first: should the moves stop half-way, a second migrate moves the rest of the files,
    # and the log already names where they go.
    log = _landing_log(plan)
    repointed = _repointed(log, moved, write=True) if log is not None and moved else 0
    for move in plan.files:
        move.target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(move.source), str(move.target))
    lines += [
        f"  {_folder(plan.home, target):<60} {_files_in(target):>10,} file(s) (was {before})"
        for target, before in targets.items()
    ]
    if repointed:
        lines.append(f"{LANDING_LOG}: {repointed} row(s) now name their file's new path")
    if plan.old_tables.is_dir() and not any(plan.old_tables.iterdir()):
        plan.old_tables.rmdir()
    return "\n".join(lines)


def migrate(
    project: Project, dry_run: bool = False, use_case: str | None = None, say: Callable[[str], None] = print
) -> int:
    """``mlops migrate``: move the project's home from the previous format to today's and record
    the format; a home already in today's format is left alone. Nothing moves when anything is in
    the way (a table or file already in the new place, a landing file whose use case is unclear)."""
    home = home_of(project)
    if home is None:
        say(
            "mlops migrate moves a local home (MLOPS_HOME); this target keeps its tables in Unity Catalog: "
            "see the Upgrading page of the docs"
        )
        return 1
    found = recorded_format(home)
    if found == HOME_FORMAT:
        say(f"MLOPS_HOME {home} is already in format {HOME_FORMAT}: nothing to migrate")
        return 0
    if found is not None and found > HOME_FORMAT:
        check_home(project)  # the error says a newer release wrote it
    plan = plan_migration(project, use_case)
    if plan.empty and not plan.problems:
        say(
            f"MLOPS_HOME {home} holds nothing in the previous format"
            + ("" if dry_run else f": format {HOME_FORMAT} recorded in {record_format(home)}")
        )
        return 0
    say(describe(plan))
    if plan.problems:
        say("Nothing moved:\n" + "\n".join(f"  {problem}" for problem in plan.problems))
        return 1
    if dry_run:
        say("Dry run: nothing moved (mlops migrate moves it)")
        return 0
    say(apply(plan))
    say(f"Format {HOME_FORMAT} recorded in {record_format(home)}")
    return 0

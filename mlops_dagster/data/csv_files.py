"""Writing generated demo data as CSV: chunk by chunk, under a temporary name until complete."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv


def write_csv(path: str | Path, schema: pa.Schema, chunks: Iterable[pa.Table]) -> Path:
    """Write ``chunks`` (tables of ``schema``) to the CSV file ``path``, one at a time.

    Memory stays that of one chunk whatever the row count. The file is written under a temporary
    name and renamed when complete, so a reader (a file sensor) never sees half a file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    # Arrow's "needed" quotes every string. Ours never hold a comma, quote or line break, and
    # under "none" Arrow refuses to write one that does rather than break the row.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    try:
        with pa.OSFile(str(tmp), "wb") as sink:
            sink.write((",".join(schema.names) + "\n").encode())  # Arrow would quote the header names
            with pacsv.CSVWriter(sink, schema, write_options=options) as writer:
                for chunk in chunks:
                    writer.write_table(chunk)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

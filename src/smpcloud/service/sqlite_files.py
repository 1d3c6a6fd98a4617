"""Owner-only permissions (0600) for the service's SQLite database and its companion files.

The database holds results, partial decryptions, aggregates and the digests of every token, so
nobody but the server's user may read it. SQLite creates a new database file with mode 0644
(less the umask), and its ``-wal``, ``-shm`` and ``-journal`` files with the mode of the
database file. :func:`make_private` therefore runs before SQLite opens the file:

* a database that does not exist yet is created here, empty, with mode 0600 (SQLite treats an
  empty file as an empty database), so the files SQLite creates next to it are 0600 as well;
* an existing database or companion file that group or others may access is **tightened** to
  0600, with one warning per file in the log (naming the file and its previous mode, never its
  contents). Tightening rather than refusing to start: the file is the server's own, and a
  database made by an earlier version (which created it 0644) must keep working. A file the
  server's user cannot chmod (owned by someone else) is left as it is, with a warning.

Paths in ``file:`` URI form are left to SQLite (and the administrator).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

logger = logging.getLogger("smpcloud.service")

PRIVATE_MODE: Final = 0o600
COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")


def companion_files(database: Path) -> list[Path]:
    """Return the database file and the files SQLite may keep beside it."""
    return [database, *(database.with_name(database.name + s) for s in COMPANION_SUFFIXES)]


def make_private(database: Path) -> None:
    """Create ``database`` with mode 0600 if missing; tighten it and its companions if loose.

    Args:
        database: the SQLite database file (its directory must exist).

    Raises:
        OSError: the file cannot be created (missing directory, no permission); the caller
            turns this into its own error, as SQLite would have failed on it too.
    """
    if not database.exists():
        try:
            fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        except FileExistsError:  # created meanwhile (another process): tightened below
            pass
        else:
            try:
                os.fchmod(fd, PRIVATE_MODE)  # exactly 0600, whatever the umask
            finally:
                os.close(fd)
    for path in companion_files(database):
        _tighten(path)


def _tighten(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    try:
        path.chmod(PRIVATE_MODE)
    except OSError as exc:
        logger.warning(
            "%s has mode %s (readable by others) and cannot be made 0600 (%s); "
            "it holds results and token digests: fix its owner and mode",
            path,
            oct(mode),
            exc.strerror,
        )
        return
    logger.warning("%s had mode %s; tightened to 0600 (owner only)", path, oct(mode))


__all__ = ["COMPANION_SUFFIXES", "PRIVATE_MODE", "companion_files", "make_private"]

"""Optional extras: a clear error when a feature needs a package the core install leaves out.

The core install (``pip install smpcloud``) carries what the library, the CLI and the service
need. The real datasets (scikit-learn) and the plots (matplotlib) of the demo, the use cases
and the paper's evaluation come with the ``examples`` extra
(``pip install 'smpcloud[examples]'``). Code that needs an extra imports it lazily, inside
``with require_extra():``, so that a missing package becomes one
:class:`MissingExtraError` that says what to install, not a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from smpcloud.errors import SmpcError

#: The optional extras of the distribution and the packages each one installs.
EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "examples": ("scikit-learn", "matplotlib"),
}


class MissingExtraError(SmpcError, ImportError):
    """A feature needs an optional extra that is not installed.

    Also an :class:`ImportError`, so code that already catches a failed import keeps working.

    Attributes:
        extra: the extra to install (e.g. ``"examples"``).
        packages: what that extra installs.
        reason: the import error behind it (e.g. ``No module named 'sklearn'``).
    """

    def __init__(self, extra: str, reason: str) -> None:
        self.extra = extra
        self.packages = EXTRAS.get(extra, ())
        self.reason = reason
        super().__init__(f"this {self.needs()} ({reason})")

    def needs(self) -> str:
        """Return ``needs the optional '<extra>' extra (<packages>): pip install ...``."""
        return (
            f"needs the optional '{self.extra}' extra ({', '.join(self.packages)}): "
            f"pip install 'smpcloud[{self.extra}]'"
        )


@contextmanager
def require_extra(extra: str = "examples") -> Iterator[None]:
    """Turn a failed import inside the block into :class:`MissingExtraError` for ``extra``.

    Use it around the lazy imports of an optional package::

        with require_extra("examples"):
            from sklearn.datasets import load_diabetes

    Args:
        extra: the extra that installs what the block imports (a key of :data:`EXTRAS`).

    Raises:
        MissingExtraError: an import inside the block failed.
    """
    try:
        yield
    except MissingExtraError:
        raise
    except ImportError as exc:
        raise MissingExtraError(extra, str(exc) or type(exc).__name__) from exc


#: The module each package of an extra is imported as.
MODULES: Final[dict[str, str]] = {"scikit-learn": "sklearn", "matplotlib": "matplotlib"}


def check_extra(*modules: str, extra: str = "examples") -> None:
    """Import ``modules`` (default: every package of ``extra``) now, to fail before work starts.

    Args:
        modules: module names to import, e.g. ``"sklearn.datasets"``; none: the top-level
            module of every package :data:`EXTRAS` lists for ``extra``.
        extra: the extra that installs them.

    Raises:
        MissingExtraError: one of them cannot be imported.
    """
    names = modules or tuple(MODULES.get(p, p) for p in EXTRAS.get(extra, ()))
    with require_extra(extra):
        for name in names:
            importlib.import_module(name)


__all__ = ["EXTRAS", "MODULES", "MissingExtraError", "check_extra", "require_extra"]

"""Optional extras: a missing scikit-learn or matplotlib is one clear error, not a traceback."""

from __future__ import annotations

import sys

import pytest

from smpcloud.datasets import MissingExtraError, check_extra, patient_bmis, require_extra
from smpcloud.errors import SmpcError

MESSAGE = (
    "needs the optional 'examples' extra (scikit-learn, matplotlib): "
    "pip install 'smpcloud[examples]'"
)


def test_a_failed_import_becomes_missing_extra_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # importing it now fails
    with pytest.raises(MissingExtraError) as caught:
        patient_bmis(3)
    error = caught.value
    assert isinstance(error, SmpcError) and isinstance(error, ImportError)
    assert error.extra == "examples"
    assert error.needs() == MESSAGE
    assert str(error).startswith(f"this {MESSAGE} (")
    with pytest.raises(MissingExtraError):
        check_extra("sklearn.datasets")


def test_require_extra_passes_everything_else_through() -> None:
    with require_extra():
        import json  # noqa: F401 - an import that works
    with pytest.raises(KeyError), require_extra():
        raise KeyError("not an import problem")

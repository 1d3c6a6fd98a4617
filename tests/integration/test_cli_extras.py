"""Without the optional 'examples' extra, the commands that need it say so in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import run

INSTALL = (
    "needs the optional 'examples' extra (scikit-learn, matplotlib): "
    "pip install 'smpcloud[examples]'"
)


@pytest.fixture
def without_examples(tmp_path: Path) -> dict[str, str]:
    """An environment where importing sklearn or matplotlib fails, as if not installed."""
    for name in ("sklearn", "matplotlib"):
        package = tmp_path / "hide" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f'raise ImportError("No module named {name} (hidden by the test)")\n'
        )
    path = [str(tmp_path / "hide"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


@pytest.mark.parametrize(
    "command",
    [
        ("demo", "--clients", "2"),
        ("example", "regression", "--customers", "10", "--transport", "memory", "--out", "OUT"),
        ("bench", "fig7", "--max-clients", "10", "--out", "OUT"),
        ("bench", "table1", "--clients", "2", "--out", "OUT"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_missing_extra_is_one_line_and_a_failing_exit_code(
    command: tuple[str, ...], without_examples: dict[str, str], tmp_path: Path
) -> None:
    args = [str(tmp_path / "out") if arg == "OUT" else arg for arg in command]
    out = run(*args, env=without_examples)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    name = " ".join(c for c in command[:2] if not c.startswith("-"))
    assert out.stderr.strip().splitlines() == [f"Error: smpcloud {name} {INSTALL}"]
    assert not (tmp_path / "out").exists()


def test_the_core_commands_work_without_the_extra(without_examples: dict[str, str]) -> None:
    assert run("--help", env=without_examples).returncode == 0
    out = run("demo", "--primitives", "--clients", "3", "--json", env=without_examples)
    assert out.returncode == 0, out.stderr

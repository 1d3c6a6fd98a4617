"""parties.toml: parsing, validation and the file `smpcloud certs` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from smpcloud.errors import InvalidInputError
from smpcloud.mpc.config import load_deployment, render_deployment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parties.toml"
    path.write_text(text)
    return path


def test_rendered_file_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, render_deployment(parties=3, threshold=2, base_port=9100))
    dep = load_deployment(path)
    assert dep.parties == 3 and dep.has_dealer and dep.threshold == 2
    assert dep.addresses() == {i: ("127.0.0.1", 9100 + i) for i in range(4)}
    assert dep.endpoint(2).cert == tmp_path / "party-2.pem"
    assert dep.ca == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("threshold = 2", "threshold = 5"), "threshold 5"),
        (lambda s: s.replace("id = 3", "id = 4"), "1..n"),
        (lambda s: s.replace("id = 3", "id = 2"), "duplicate id 2"),
        (lambda s: s.replace("port = 9102", "port = 9101"), "share a host and port"),
        (lambda s: s.replace("port = 9102", "port = 70000"), "out of range"),
        (lambda s: s.replace('ca = "ca.pem"', ""), "missing 'ca'"),
        (lambda s: s.replace("[deployment]", "[deploy]"), "missing \\[deployment\\]"),
        (lambda s: s.replace('host = "127.0.0.1"', "host = 5", 1), "'host' must be a str"),
        (lambda s: s + "\n[[[", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, edit, message: str) -> None:
    text = edit(render_deployment(parties=3, threshold=2, base_port=9100))
    with pytest.raises(InvalidInputError, match=message):
        load_deployment(write(tmp_path, text))


def test_unknown_party(tmp_path: Path) -> None:
    dep = load_deployment(
        write(tmp_path, render_deployment(parties=3, threshold=2, base_port=9100))
    )
    with pytest.raises(InvalidInputError, match="party 7 is not in the deployment"):
        dep.endpoint(7)


def test_truncation_shifts_are_optional_and_checked(tmp_path: Path) -> None:
    from smpcloud.mpc.session import SessionParameters

    text = render_deployment(parties=3, threshold=2, base_port=9100)
    plain = load_deployment(write(tmp_path, text))
    assert plain.truncation_shifts is None
    assert SessionParameters.from_deployment(plain).shifts is None
    pinned = text.replace("frac_bits = 16", "frac_bits = 16\ntruncation_shifts = [16, 32]")
    dep = load_deployment(write(tmp_path, pinned))
    params = SessionParameters.from_deployment(dep, session="s")
    assert (params.n, params.t, params.session, params.shifts) == (3, 2, "s", frozenset({16, 32}))
    for bad in ("[]", "[0]", '["16"]', "16", "[true]"):
        broken = text.replace("frac_bits = 16", f"frac_bits = 16\ntruncation_shifts = {bad}")
        with pytest.raises(InvalidInputError, match="truncation_shifts"):
            load_deployment(write(tmp_path, broken))

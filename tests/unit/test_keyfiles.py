"""Tests for smpcloud.keyfiles: modes, round trips, refusal to overwrite, strict reading."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from smpcloud import keyfiles
from smpcloud.crypto import paillier
from smpcloud.crypto.paillier import PrivateKey, PublicKey
from smpcloud.errors import InvalidInputError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return paillier.generate_keypair(512, insecure=True)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so that only the code under test can make a file private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_key_file_is_0600(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey], open_umask: None
) -> None:
    path = tmp_path / "key.json"
    keyfiles.save_private_key(path, keys[1])
    assert mode(path) == 0o600
    assert os.stat(path).st_uid == os.getuid()


def test_private_key_file_is_0600_under_odd_umask(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey]
) -> None:
    old = os.umask(0o277)  # would leave the owner read-only
    try:
        path = keyfiles.save_private_key(tmp_path / "key.json", keys[1])
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_private_key_round_trip(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, sk = keys
    path = tmp_path / "key.json"
    assert keyfiles.save_private_key(path, sk) == path
    loaded = keyfiles.load_private_key(path, insecure=True)
    assert loaded == sk
    assert loaded.public_key == pk
    assert loaded.decrypt(pk.encrypt(-77)) == -77
    on_disk = json.loads(path.read_text())
    assert on_disk["kind"] == "smpcloud.paillier.private_key" and on_disk["version"] == 1


def test_public_key_round_trip(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey], open_umask: None
) -> None:
    pk, sk = keys
    path = keyfiles.save_public_key(tmp_path / "pub.json", pk)
    assert mode(path) == 0o644
    loaded = keyfiles.load_public_key(path, insecure=True)
    assert loaded == pk
    assert sk.decrypt(loaded.encrypt(5)) == 5
    assert json.loads(path.read_text()) == pk.to_json()


def test_small_keys_need_insecure_flag(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, sk = keys
    pub = keyfiles.save_public_key(tmp_path / "pub.json", pk)
    sec = keyfiles.save_private_key(tmp_path / "sec.json", sk)
    with pytest.raises(InvalidInputError, match=r"pub\.json"):
        keyfiles.load_public_key(pub)
    with pytest.raises(InvalidInputError, match=r"sec\.json"):
        keyfiles.load_private_key(sec)


def test_refuses_to_overwrite(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, sk = keys
    path = tmp_path / "key.json"
    path.write_text("precious")
    with pytest.raises(FileExistsError) as info:
        keyfiles.save_private_key(path, sk)
    assert str(path) in str(info.value)
    with pytest.raises(FileExistsError):
        keyfiles.save_public_key(path, pk)
    assert path.read_text() == "precious"


def test_overwrite_replaces_and_tightens_mode(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey], open_umask: None
) -> None:
    _, sk = keys
    path = tmp_path / "key.json"
    path.write_text("old")
    path.chmod(0o644)
    keyfiles.save_private_key(path, sk, overwrite=True)
    assert mode(path) == 0o600
    assert keyfiles.load_private_key(path, insecure=True) == sk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json"]  # no temporary left over


def test_does_not_follow_symlinks(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    _, sk = keys
    elsewhere = tmp_path / "elsewhere.json"
    link = tmp_path / "key.json"
    link.symlink_to(elsewhere)  # dangling: a plain open(..., "w") would create elsewhere.json
    with pytest.raises(FileExistsError):
        keyfiles.save_private_key(link, sk)
    assert not elsewhere.exists()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    for load in (keyfiles.load_public_key, keyfiles.load_private_key, keyfiles.read_json):
        with pytest.raises(FileNotFoundError) as info:
            load(path)
        assert str(path) in str(info.value)


def test_missing_directory(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    with pytest.raises(FileNotFoundError):
        keyfiles.save_private_key(tmp_path / "no" / "key.json", keys[1])


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"not json",
        b'{"kind": "a", "kind": "b"}',  # duplicate key
        b'{"version": NaN}',
        b'{"version": Infinity}',
        b"\xff\xfe{}",  # not UTF-8
    ],
)
def test_bad_json_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    for load in (keyfiles.read_json, keyfiles.load_public_key, keyfiles.load_private_key):
        with pytest.raises(InvalidInputError, match=r"broken\.json"):
            load(path)


def test_bad_json_error_does_not_echo_secrets(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey]
) -> None:
    _, sk = keys
    path = tmp_path / "sec.json"
    keyfiles.save_private_key(path, sk)
    text = path.read_text()
    path.write_text(text[:-3])  # truncated
    with pytest.raises(InvalidInputError) as info:
        keyfiles.load_private_key(path, insecure=True)
    message = str(info.value)
    assert "sec.json" in message
    assert paillier.encode_int(sk.p) not in message and str(sk.p) not in message


def test_wrong_kind_names_the_file(tmp_path: Path, keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, _ = keys
    path = keyfiles.save_public_key(tmp_path / "pub.json", pk)
    with pytest.raises(InvalidInputError, match=r"pub\.json.*kind"):
        keyfiles.load_private_key(path, insecure=True)


def test_error_class_is_preserved(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    keyfiles.write_public_json(path, {"kind": "smpcloud.paillier.public_key", "version": 1})
    with pytest.raises(InvalidInputError, match=r"odd\.json.*missing field\(s\) n"):
        keyfiles.load_public_key(path)


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (keyfiles.MAX_FILE_BYTES + 1))
    with pytest.raises(InvalidInputError, match="larger"):
        keyfiles.read_json(path)


def test_generic_json_helpers(tmp_path: Path, open_umask: None) -> None:
    share = {"kind": "smpcloud.test.share", "version": 1, "values": [1, 2, 3]}
    secret = keyfiles.write_secret_json(tmp_path / "share.json", share)
    public = keyfiles.write_public_json(str(tmp_path / "public.json"), share)
    assert (mode(secret), mode(public)) == (0o600, 0o644)
    assert keyfiles.read_json(secret) == share == keyfiles.read_json(str(public))
    with pytest.raises(ValueError):
        keyfiles.write_secret_json(tmp_path / "nan.json", {"x": float("nan")})
    with pytest.raises(TypeError):
        keyfiles.write_secret_json(tmp_path / "obj.json", {"x": object()})


def test_failed_overwrite_leaves_no_temporary(
    tmp_path: Path, keys: tuple[PublicKey, PrivateKey]
) -> None:
    target = tmp_path / "key.json"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty directory cannot be replaced by a file
    with pytest.raises(OSError):
        keyfiles.save_private_key(target, keys[1], overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json"]
    assert target.is_dir()

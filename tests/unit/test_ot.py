"""Oblivious transfer: base OT, 1-out-of-N, IKNP extension and Gilboa products (pure layer)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from nacl import bindings as sodium

from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.ot import (
    MAGIC,
    BaseOTReceiver,
    BaseOTSender,
    MessageKind,
    OneOfNReceiver,
    OneOfNSender,
    aes_ctr_stream,
    as_bits,
    frame,
    is_valid_point,
    random_scalar,
)
from smpcloud.crypto.ot_extension import (
    FIXED_KEY,
    KAPPA,
    ExtensionReceiver,
    ExtensionSender,
    ProductReceiver,
    ProductSender,
    hash_rows,
    max_product_count,
    product_ots,
    transpose_bits,
)
from smpcloud.errors import InvalidInputError, ProtocolError
from smpcloud.mpc.runtime import MPC_FIELD

FIELD64 = Field((4294967291, 4294967279))  # two 32-bit primes: "64-bit" elements
SMALL = Field((251, 65521))


def random_bits(count: int) -> np.ndarray:
    return np.frombuffer(os.urandom(count), dtype=np.uint8) & 1


def random_bytes(*shape: int) -> np.ndarray:
    return np.frombuffer(os.urandom(int(np.prod(shape))), dtype=np.uint8).reshape(shape)


def base_ot(
    count: int, choices: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = random_bits(count) if choices is None else choices
    sender, receiver = BaseOTSender(count), BaseOTReceiver(c)
    keys = sender.finish(receiver.reply(sender.setup()))
    return keys, receiver.output(), c


@pytest.fixture(scope="module")
def extension() -> tuple[ExtensionReceiver, ExtensionSender]:
    receiver, sender = ExtensionReceiver(), ExtensionSender()
    receiver.finish_setup(sender.setup(receiver.setup()))
    return receiver, sender


_batch = iter(range(1, 1 << 40))


def next_batch() -> int:
    return next(_batch)


# ============================================================================ base OT


def test_base_ot_receiver_gets_exactly_its_chosen_keys() -> None:
    keys, got, choices = base_ot(64)
    assert keys.shape == (64, 2, 16) and got.shape == (64, 16)
    rows = np.arange(64)
    assert (keys[rows, choices] == got).all()
    # The key of the message it did not choose is not what it computed (and all keys differ).
    assert not (keys[rows, 1 - choices] == got).all(axis=1).any()
    assert len({k.tobytes() for k in keys.reshape(-1, 16)}) == 128


def test_base_ot_reply_points_are_valid_and_fresh_for_either_choice() -> None:
    sender = BaseOTSender(8)
    setup = sender.setup()
    reply = BaseOTReceiver([0, 1] * 4).reply(setup)
    points = [reply[10 + 32 * i : 42 + 32 * i] for i in range(8)]
    assert all(is_valid_point(p) for p in points)
    assert len(set(points)) == 8


def test_random_scalar_is_reduced_and_nonzero() -> None:
    for _ in range(20):
        s = random_scalar()
        assert len(s) == 32 and any(s) and s[31] < 0x10  # below L ~ 2^252


def test_base_ot_rejects_out_of_order_calls() -> None:
    sender, receiver = BaseOTSender(4), BaseOTReceiver([1, 0, 1, 1])
    with pytest.raises(ProtocolError, match="finish"):
        sender.finish(b"")
    with pytest.raises(ProtocolError, match="output"):
        receiver.output()
    setup = sender.setup()
    with pytest.raises(ProtocolError, match="setup"):
        sender.setup()
    reply = receiver.reply(setup)
    with pytest.raises(ProtocolError, match="reply"):
        receiver.reply(setup)
    sender.finish(reply)
    with pytest.raises(ProtocolError, match="finish"):
        sender.finish(reply)


def _reply_with(points: list[bytes]) -> bytes:
    return frame(MessageKind.BASE_REPLY, struct.pack("<I", len(points)), *points)


def _small_order_point() -> bytes:
    # (0, -1): order 2 on Edwards25519 (canonical encoding of y = p - 1, x = 0)
    return bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")


@pytest.mark.parametrize(
    "bad",
    [
        bytes(32),  # y = 0: not canonical for a small-order check / low order
        b"\x01" + bytes(31),  # the identity
        b"\xff" * 32,  # not a canonical encoding
        "small order",
        "torsion",  # a valid point plus a small-order point: outside the prime-order subgroup
    ],
)
def test_base_ot_sender_rejects_invalid_points(bad: bytes | str) -> None:
    if bad == "small order":
        bad = _small_order_point()
    elif bad == "torsion":
        good = sodium.crypto_scalarmult_ed25519_base_noclamp(random_scalar())
        bad = sodium.crypto_core_ed25519_add(good, _small_order_point())
    assert isinstance(bad, bytes)
    sender = BaseOTSender(2)
    setup = sender.setup()
    good_reply = BaseOTReceiver([0, 1]).reply(setup)
    with pytest.raises(ProtocolError, match="not a valid group element"):
        sender.finish(_reply_with([good_reply[10:42], bad]))
    # A state machine that raised is spent.
    with pytest.raises(ProtocolError, match="failed"):
        sender.finish(good_reply)


def test_base_ot_sender_rejects_the_sender_point_echoed_back() -> None:
    sender = BaseOTSender(1)
    setup = sender.setup()
    with pytest.raises(ProtocolError, match="equals"):
        sender.finish(_reply_with([setup[-32:]]))


def test_base_ot_receiver_rejects_an_invalid_sender_point() -> None:
    for bad in (bytes(32), b"\x01" + bytes(31), _small_order_point(), b"\xff" * 32):
        message = frame(MessageKind.BASE_SETUP, struct.pack("<I", 3), bad)
        with pytest.raises(ProtocolError, match="not a valid group element"):
            BaseOTReceiver([0, 1, 1]).reply(message)


def test_base_ot_messages_are_decoded_strictly() -> None:
    sender = BaseOTSender(3)
    setup = sender.setup()
    bad_setups = {
        "bad magic": b"XXXX" + setup[4:],
        "version": setup[:4] + b"\x09" + setup[5:],
        "kind": setup[:5] + bytes([MessageKind.BASE_REPLY]) + setup[6:],
        "expected 3": setup[:6] + struct.pack("<I", 4) + setup[10:],
        "body of 31": setup[:-1],
        "body of 33": setup + b"\x00",
        "too short": setup[:7],
    }
    for reason, data in bad_setups.items():
        with pytest.raises(ProtocolError, match=reason):
            BaseOTReceiver([1, 1, 0]).reply(data)
    with pytest.raises(ProtocolError, match="expected bytes"):
        BaseOTReceiver([1]).reply("not bytes")  # type: ignore[arg-type]
    reply = BaseOTReceiver([1, 1, 0]).reply(setup)
    for data in (reply[:-1], reply + b"\x00", reply[:6] + struct.pack("<I", 2) + reply[10:]):
        fresh = BaseOTSender(3)
        fresh.setup()
        with pytest.raises(ProtocolError):
            fresh.finish(data)


def test_base_ot_parameters_are_checked() -> None:
    for bad in (0, -1, 1 << 21, True):
        with pytest.raises(InvalidInputError):
            BaseOTSender(bad)
    for choices in ([], [2], [[0, 1]], [0.5], [-1]):
        with pytest.raises(InvalidInputError):
            BaseOTReceiver(choices)
    assert as_bits([True, False]).tolist() == [1, 0]


def test_reprs_hide_secrets() -> None:
    sender, receiver = BaseOTSender(2), BaseOTReceiver([1, 0])
    sender.setup()
    assert "redacted" in repr(sender) and "redacted" in repr(receiver)
    assert "redacted" in repr(ExtensionReceiver()) and "redacted" in repr(ExtensionSender())
    assert "redacted" in repr(OneOfNReceiver([1], size=4, length=2))


# ============================================================================ 1-out-of-N


@pytest.mark.parametrize(("size", "length"), [(2, 1), (3, 16), (5, 7), (8, 40), (1000, 33)])
def test_one_of_n_receiver_gets_the_chosen_messages(size: int, length: int) -> None:
    messages = random_bytes(4, size, length)
    indices = [0, size - 1, size // 2, (7 * size) // 9]
    sender = OneOfNSender(messages)
    receiver = OneOfNReceiver(indices, size=size, length=length)
    got = receiver.finish(sender.finish(receiver.reply(sender.setup())))
    assert (got == messages[np.arange(4), indices]).all()


def test_one_of_n_accepts_lists_of_bytes() -> None:
    rows = [[b"alpha", b"bravo", b"charl"], [b"delta", b"echo!", b"foxtr"]]
    sender = OneOfNSender(rows)
    receiver = OneOfNReceiver([2, 0], size=3, length=5)
    got = receiver.finish(sender.finish(receiver.reply(sender.setup())))
    assert [bytes(g) for g in got] == [b"charl", b"delta"]


def test_one_of_n_receiver_cannot_decrypt_the_other_messages() -> None:
    size, length, chosen = 16, 32, 5
    messages = random_bytes(1, size, length)
    sender = OneOfNSender(messages)
    receiver = OneOfNReceiver([chosen], size=size, length=length)
    payload = sender.finish(receiver.reply(sender.setup()))
    cipher = np.frombuffer(payload[18:], dtype=np.uint8).reshape(size, length)
    keys = receiver._base.output()  # the receiver's whole knowledge: one key per index bit
    for other in range(size):
        # The best the receiver can do: use its keys at the other index.
        pad = np.zeros(length, dtype=np.uint8)
        for j in range(keys.shape[0]):
            pad ^= aes_ctr_stream(keys[j].tobytes(), other * length, length)
        guess = cipher[other] ^ pad
        assert (guess == messages[0, other]).all() == (other == chosen)
    # And the ciphertexts themselves do not equal the plaintexts.
    assert not (cipher == messages[0]).all(axis=1).any()


def test_one_of_n_rejects_malformed_and_out_of_order_messages() -> None:
    messages = random_bytes(2, 6, 8)
    sender = OneOfNSender(messages)
    receiver = OneOfNReceiver([1, 4], size=6, length=8)
    with pytest.raises(ProtocolError, match="finish"):
        receiver.finish(b"")
    payload = sender.finish(receiver.reply(sender.setup()))
    for bad, reason in [
        (payload[:-1], "body"),
        (payload + b"\x00", "body"),
        (payload[:6] + struct.pack("<III", 2, 7, 8) + payload[18:], "expected"),
        (payload[:6] + struct.pack("<III", 1, 6, 8) + payload[18:], "expected"),
        (payload[:5] + bytes([MessageKind.BASE_REPLY]) + payload[6:], "kind"),
    ]:
        fresh_sender = OneOfNSender(messages)
        fresh = OneOfNReceiver([1, 4], size=6, length=8)
        fresh_sender.finish(fresh.reply(fresh_sender.setup()))
        with pytest.raises(ProtocolError, match=reason):
            fresh.finish(bad)
    assert receiver.finish(payload).shape == (2, 8)
    with pytest.raises(ProtocolError):
        receiver.finish(payload)


def test_one_of_n_parameters_are_checked() -> None:
    with pytest.raises(InvalidInputError):
        OneOfNSender(random_bytes(1, 1, 4))  # N = 1
    with pytest.raises(InvalidInputError):
        OneOfNSender([[b"ab", b"abc"]])  # ragged
    with pytest.raises(InvalidInputError):
        OneOfNSender([])
    with pytest.raises(InvalidInputError, match="indices"):
        OneOfNReceiver([6], size=6, length=1)
    with pytest.raises(InvalidInputError, match="indices"):
        OneOfNReceiver([-1], size=6, length=1)
    with pytest.raises(InvalidInputError):
        OneOfNReceiver([0], size=1, length=1)
    with pytest.raises(InvalidInputError):
        OneOfNReceiver([0], size=2, length=0)


# ============================================================================ IKNP kernels


def reference_transpose(columns: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(columns, axis=1, bitorder="little")
    return np.packbits(bits.T, axis=1, bitorder="little")


@pytest.mark.parametrize("m", [64, 128, 640, 4096])
def test_transpose_bits_matches_the_unpackbits_reference(m: int) -> None:
    columns = random_bytes(KAPPA, m // 8)
    assert (transpose_bits(columns) == reference_transpose(columns)).all()
    # Transposing twice (as 128 x 128 blocks) gives the matrix back.
    square = random_bytes(KAPPA, 16)
    assert (transpose_bits(transpose_bits(square).copy()) == square).all()


def test_transpose_bits_checks_its_input() -> None:
    with pytest.raises(InvalidInputError):
        transpose_bits(random_bytes(64, 8))
    with pytest.raises(InvalidInputError, match="multiple of 64"):
        transpose_bits(random_bytes(KAPPA, 4))


def test_hash_is_tweaked_by_batch_index_and_block() -> None:
    rows = random_bytes(8, 16)
    same = np.repeat(rows[:1], 8, axis=0)
    h = hash_rows(same, batch=1)
    assert len({r.tobytes() for r in h}) == 8  # equal inputs, different indices
    assert not (hash_rows(rows, batch=1) == hash_rows(rows, batch=2)).all(axis=1).any()
    wide = hash_rows(rows, batch=3, width=40)
    assert wide.shape == (8, 40) and (wide[:, :16] == hash_rows(rows, batch=3)).all()
    assert (hash_rows(rows, batch=3) == hash_rows(rows.copy(), batch=3)).all()
    with pytest.raises(InvalidInputError):
        hash_rows(rows, batch=-1)
    with pytest.raises(InvalidInputError):
        hash_rows(rows, batch=1, width=0)


def test_fixed_key_is_the_documented_nothing_up_my_sleeve_value() -> None:
    import hashlib

    text = b"smpcloud: fixed AES key of the OT-extension hash"
    assert hashlib.blake2b(text, digest_size=16).digest() == FIXED_KEY


# ============================================================================ IKNP


@pytest.mark.parametrize("m", [1, 7, 64, 65, 1000, 5000])
def test_extended_random_ots_give_the_receiver_its_choice(
    extension: tuple[ExtensionReceiver, ExtensionSender], m: int
) -> None:
    receiver, sender = extension
    choices = random_bits(m)
    batch = next_batch()
    message, mine = receiver.extend(choices, batch=batch)
    zero, one = sender.extend(message, batch=batch, count=m)
    chosen = np.where(choices[:, None].astype(bool), one, zero)
    other = np.where(choices[:, None].astype(bool), zero, one)
    assert (mine == chosen).all()
    assert not (mine == other).all(axis=1).any()  # the other output is not what it holds


def test_extended_chosen_message_ots(extension: tuple[ExtensionReceiver, ExtensionSender]) -> None:
    receiver, sender = extension
    m, length = 300, 21
    choices = random_bits(m)
    zero, one = random_bytes(m, length), random_bytes(m, length)
    batch = next_batch()
    payload = sender.send_chosen(
        receiver.request_chosen(choices, batch=batch, length=length), zero, one, batch=batch
    )
    got = receiver.receive_chosen(payload)
    assert (got == np.where(choices[:, None].astype(bool), one, zero)).all()
    # Decrypting the unchosen ciphertexts with everything the receiver holds gives garbage.
    both = np.frombuffer(payload[22:], dtype=np.uint8).reshape(2, m, length)
    _, pads = receiver.extend(choices, batch=next_batch(), width=length)  # fresh: unrelated
    unchosen = np.where(choices[:, None].astype(bool), both[0], both[1])
    expected = np.where(choices[:, None].astype(bool), zero, one)
    own_pads = got ^ np.where(choices[:, None].astype(bool), both[1], both[0])
    assert not ((unchosen ^ own_pads) == expected).all(axis=1).any()
    assert not ((unchosen ^ pads) == expected).all(axis=1).any()


def test_extension_state_machines_reject_out_of_order_calls() -> None:
    receiver, sender = ExtensionReceiver(), ExtensionSender()
    with pytest.raises(ProtocolError, match="extend"):
        receiver.extend([1, 0], batch=1)
    with pytest.raises(ProtocolError, match="extend"):
        sender.extend(b"", batch=1, count=2)
    with pytest.raises(ProtocolError, match="finish_setup"):
        receiver.finish_setup(b"")
    setup = receiver.setup()
    with pytest.raises(ProtocolError):
        receiver.setup()
    reply = sender.setup(setup)
    with pytest.raises(ProtocolError, match="setup"):
        sender.setup(setup)
    receiver.finish_setup(reply)
    with pytest.raises(ProtocolError):
        receiver.finish_setup(reply)
    assert receiver.ready and sender.ready


def test_batch_numbers_are_used_once(extension: tuple[ExtensionReceiver, ExtensionSender]) -> None:
    receiver, sender = extension
    batch = next_batch()
    message, _ = receiver.extend(random_bits(10), batch=batch)
    with pytest.raises(ProtocolError, match="already used"):
        receiver.extend(random_bits(10), batch=batch)
    sender.extend(message, batch=batch, count=10)
    with pytest.raises(ProtocolError, match="already used"):
        sender.extend(message, batch=batch, count=10)


def test_extension_messages_are_decoded_strictly(
    extension: tuple[ExtensionReceiver, ExtensionSender],
) -> None:
    receiver, sender = extension

    def mutations(message: bytes, batch: int) -> list[tuple[bytes, int, int, str]]:
        return [
            (message, batch + 10**9, 100, "expected batch"),
            (message, batch, 99, "expected 99"),
            (message[:-1], batch, 100, "body"),
            (message + b"\x00", batch, 100, "body"),
            (b"SMPC" + message[4:], batch, 100, "magic"),
            (message[:5] + bytes([MessageKind.CORRECTIONS]) + message[6:], batch, 100, "kind"),
        ]

    for case in range(6):
        batch = next_batch()
        message, _ = receiver.extend(random_bits(100), batch=batch)
        data, expected_batch, count, reason = mutations(message, batch)[case]
        with pytest.raises(ProtocolError, match=reason):
            sender.extend(data, batch=expected_batch, count=count)
        # The sender's batch number is spent even though the message was bad.
        with pytest.raises(ProtocolError, match="already used"):
            sender.extend(message, batch=expected_batch, count=100)


def test_chosen_payloads_are_checked(extension: tuple[ExtensionReceiver, ExtensionSender]) -> None:
    receiver, sender = extension
    batch = next_batch()
    zero = one = random_bytes(20, 8)
    payload = sender.send_chosen(
        receiver.request_chosen(random_bits(20), batch=batch, length=8), zero, one, batch=batch
    )
    with pytest.raises(ProtocolError, match="not requested"):
        receiver.receive_chosen(payload[:6] + struct.pack("<Q", batch + 1) + payload[14:])
    with pytest.raises(ProtocolError, match="body"):
        receiver.receive_chosen(payload[:-1])
    with pytest.raises(ProtocolError, match="not requested"):
        receiver.receive_chosen(payload)  # the failed attempt consumed the request
    with pytest.raises(InvalidInputError):
        sender.send_chosen(b"", zero, random_bytes(20, 9), batch=next_batch())


def test_extension_parameters_are_checked(
    extension: tuple[ExtensionReceiver, ExtensionSender],
) -> None:
    receiver, _ = extension
    with pytest.raises(InvalidInputError):
        receiver.extend([], batch=next_batch())
    with pytest.raises(InvalidInputError):
        receiver.extend([0, 1], batch=1 << 48)
    with pytest.raises(InvalidInputError):
        receiver.extend([0, 1], batch=next_batch(), width=0)


# ============================================================================ Gilboa


@pytest.mark.parametrize("field", [SMALL, FIELD64, DEFAULT_FIELD, MPC_FIELD], ids=str)
def test_gilboa_shares_add_up_to_the_product(
    extension: tuple[ExtensionReceiver, ExtensionSender], field: Field
) -> None:
    receiver, sender = extension
    count = 333
    x, y = field.random(count), field.random(count)
    x[:, 0] = 0
    y[:, 1] = 0
    x[:, 2] = field.column[:, 0] - 1  # p - 1: every bit set
    y[:, 2] = field.column[:, 0] - 1
    batch = next_batch()
    product_receiver = ProductReceiver(receiver, field, x, batch=batch)
    product_sender = ProductSender(sender, field, y, batch=batch)
    corrections, theirs = product_sender.respond(product_receiver.request())
    mine = product_receiver.finish(corrections)
    field.validate(mine)
    field.validate(theirs)
    assert (field.add(mine, theirs) == field.mul(x, y)).all()
    assert product_ots(field, count) == count * sum(p.bit_length() for p in field.moduli)


def test_gilboa_state_machines_reject_out_of_order_and_malformed_messages(
    extension: tuple[ExtensionReceiver, ExtensionSender],
) -> None:
    receiver, sender = extension
    field = FIELD64
    x, y = field.random(10), field.random(10)
    batch = next_batch()
    product_receiver = ProductReceiver(receiver, field, x, batch=batch)
    product_sender = ProductSender(sender, field, y, batch=batch)
    with pytest.raises(ProtocolError, match="finish"):
        product_receiver.finish(b"")
    request = product_receiver.request()
    with pytest.raises(ProtocolError, match="request"):
        product_receiver.request()
    product_sender.respond(request)
    with pytest.raises(ProtocolError, match="respond"):
        product_sender.respond(request)
    header = 6 + 13  # prefix, then batch (u64), count (u32), k (u8)

    def mutate(corrections: bytes, batch: int, reason: str) -> bytes:
        moduli = corrections[header : header + 8]
        body = np.frombuffer(corrections[header + 8 :], dtype="<u4").copy()
        if reason == "batch":
            return (
                corrections[:6]
                + struct.pack("<QIB", batch + 10**9, 10, 2)
                + moduli
                + body.tobytes()
            )
        if reason == "elements":
            return corrections[:6] + struct.pack("<QIB", batch, 9, 2) + moduli + body.tobytes()
        if reason == "moduli differ":
            return corrections[:header] + struct.pack("<2I", 5, 7) + body.tobytes()
        if reason == "outside its prime":
            body[3] = 4294967291
            return corrections[:header] + moduli + body.tobytes()
        return corrections[:-4]

    for reason in ("batch", "elements", "moduli differ", "outside its prime", "body"):
        fresh_batch = next_batch()
        fresh = ProductReceiver(receiver, field, x, batch=fresh_batch)
        good, _ = ProductSender(sender, field, y, batch=fresh_batch).respond(fresh.request())
        data = mutate(good, fresh_batch, reason)
        with pytest.raises(ProtocolError, match=reason):
            fresh.finish(data)
        with pytest.raises(ProtocolError):
            fresh.finish(good)  # spent: a state machine that raised stays failed


def test_gilboa_checks_its_inputs(extension: tuple[ExtensionReceiver, ExtensionSender]) -> None:
    receiver, sender = extension
    field = FIELD64
    with pytest.raises(InvalidInputError):
        ProductReceiver(receiver, field, DEFAULT_FIELD.random(3), batch=1)
    outside = field.random(3)
    outside[0, 0] = field.moduli[0]
    with pytest.raises(InvalidInputError):
        ProductSender(sender, field, outside, batch=1)
    with pytest.raises(InvalidInputError):
        ProductSender(sender, field, field.random(max_product_count(field) + 1), batch=1)
    with pytest.raises(ProtocolError):
        ProductReceiver(ExtensionReceiver(), field, field.random(3), batch=1).request()


def test_messages_share_one_prefix() -> None:
    sender = BaseOTSender(1)
    assert sender.setup()[:4] == MAGIC

"""Hypothesis: every OT variant delivers exactly the chosen messages, Gilboa shares add up to
the product, dealer-free triples multiply like the dealer's, and OT messages decode strictly."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from smpcloud.crypto.field import DEFAULT_FIELD, Field
from smpcloud.crypto.ot import BaseOTReceiver, BaseOTSender, OneOfNReceiver, OneOfNSender
from smpcloud.crypto.ot_extension import (
    KAPPA,
    ExtensionReceiver,
    ExtensionSender,
    ProductReceiver,
    ProductSender,
    transpose_bits,
)
from smpcloud.errors import ProtocolError
from smpcloud.mpc.local import run_local
from smpcloud.mpc.ot_triples import truncation_error_bound
from smpcloud.mpc.runtime import MPC_FIELD, Party

FIELDS = [Field((251, 65521)), Field((4294967291, 4294967279)), DEFAULT_FIELD, MPC_FIELD]
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
mpc_settings = settings(max_examples=15, deadline=None)

_receiver, _sender = ExtensionReceiver(), ExtensionSender()
_receiver.finish_setup(_sender.setup(_receiver.setup()))
_batches = iter(range(1, 1 << 40))


def bits(draw_list: list[bool]) -> np.ndarray:
    return np.array(draw_list, dtype=np.uint8)


def as_bytes(data: bytes, *shape: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


@settings(max_examples=20, deadline=None)
@given(choices=st.lists(st.booleans(), min_size=1, max_size=12))
def test_base_ot_gives_the_chosen_key_and_not_the_other(choices: list[bool]) -> None:
    c = bits(choices)
    sender, receiver = BaseOTSender(len(c)), BaseOTReceiver(c)
    keys = sender.finish(receiver.reply(sender.setup()))
    rows = np.arange(len(c))
    assert (keys[rows, c] == receiver.output()).all()
    assert not (keys[rows, 1 - c] == receiver.output()).all(axis=1).any()


@settings(max_examples=30, deadline=None)
@given(data=st.data(), size=st.integers(2, 40), length=st.integers(1, 50))
def test_one_of_n_delivers_exactly_the_chosen_messages(
    data: st.DataObject, size: int, length: int
) -> None:
    indices = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=4))
    raw = data.draw(
        st.binary(min_size=len(indices) * size * length, max_size=len(indices) * size * length)
    )
    messages = as_bytes(raw, len(indices), size, length)
    sender = OneOfNSender(messages)
    receiver = OneOfNReceiver(indices, size=size, length=length)
    got = receiver.finish(sender.finish(receiver.reply(sender.setup())))
    assert (got == messages[np.arange(len(indices)), indices]).all()


@settings(max_examples=40, deadline=None)
@given(blocks=st.integers(1, 20), seed=st.binary(min_size=16, max_size=16))
def test_transpose_bits_agrees_with_unpackbits(blocks: int, seed: bytes) -> None:
    rng_bytes = (seed * (blocks * KAPPA))[: KAPPA * 8 * blocks]
    columns = as_bytes(rng_bytes, KAPPA, 8 * blocks) ^ np.arange(8 * blocks, dtype=np.uint8)
    expected = np.packbits(
        np.unpackbits(columns, axis=1, bitorder="little").T, axis=1, bitorder="little"
    )
    assert (transpose_bits(columns) == expected).all()


@settings(max_examples=40, deadline=None)
@given(choices=st.lists(st.booleans(), min_size=1, max_size=700), width=st.integers(1, 48))
def test_extended_random_ots_give_the_choice(choices: list[bool], width: int) -> None:
    c = bits(choices)
    batch = next(_batches)
    message, mine = _receiver.extend(c, batch=batch, width=width)
    zero, one = _sender.extend(message, batch=batch, count=len(c), width=width)
    assert (mine == np.where(c[:, None].astype(bool), one, zero)).all()
    if width >= 8:  # the other output differs except with probability 2^-64 per OT
        assert not (mine == np.where(c[:, None].astype(bool), zero, one)).all(axis=1).any()


@settings(max_examples=30, deadline=None)
@given(data=st.data(), m=st.integers(1, 200), length=st.integers(1, 40))
def test_extended_chosen_message_ots(data: st.DataObject, m: int, length: int) -> None:
    c = bits(data.draw(st.lists(st.booleans(), min_size=m, max_size=m)))
    zero = as_bytes(data.draw(st.binary(min_size=m * length, max_size=m * length)), m, length)
    one = as_bytes(data.draw(st.binary(min_size=m * length, max_size=m * length)), m, length)
    batch = next(_batches)
    request = _receiver.request_chosen(c, batch=batch, length=length)
    got = _receiver.receive_chosen(_sender.send_chosen(request, zero, one, batch=batch))
    assert (got == np.where(c[:, None].astype(bool), one, zero)).all()


@settings(max_examples=40, deadline=None)
@given(data=st.data(), which=st.sampled_from(range(len(FIELDS))), count=st.integers(1, 40))
def test_gilboa_shares_add_up_to_the_product(data: st.DataObject, which: int, count: int) -> None:
    field = FIELDS[which]
    values = st.integers(min_value=0, max_value=field.modulus - 1)
    xs = data.draw(st.lists(values, min_size=count, max_size=count))
    ys = data.draw(st.lists(values, min_size=count, max_size=count))
    x, y = field.from_ints(np.array(xs, dtype=object)), field.from_ints(np.array(ys, dtype=object))
    batch = next(_batches)
    receiver = ProductReceiver(_receiver, field, x, batch=batch)
    corrections, theirs = ProductSender(_sender, field, y, batch=batch).respond(receiver.request())
    total = field.add(receiver.finish(corrections), theirs)
    assert field.to_ints(total, signed=False).tolist() == [
        (a * b) % field.modulus for a, b in zip(xs, ys)
    ]


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, 9), value=st.integers(0, 255), cut=st.integers(1, 40))
def test_mutated_or_cut_headers_are_rejected(position: int, value: int, cut: int) -> None:
    sender = BaseOTSender(2)
    setup = sender.setup()
    if setup[position] != value:
        mutated = setup[:position] + bytes([value]) + setup[position + 1 :]
        try:
            BaseOTReceiver([0, 1]).reply(mutated)
        except ProtocolError:
            pass
        else:
            raise AssertionError("a mutated OT header was accepted")
    for data in (setup[: len(setup) - cut], setup + bytes(cut)):
        try:
            BaseOTReceiver([0, 1]).reply(data)
        except ProtocolError:
            continue
        raise AssertionError("a truncated or extended OT message was accepted")


# ====================================================================== through the runtime


def run(n: int, t: int, program: Any, **kwargs: Any) -> list[Any]:
    return asyncio.run(run_local(n, t, program, **kwargs))


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(2, 3),
    data=st.data(),
    pairs=st.lists(st.tuples(INT64, INT64), min_size=1, max_size=20),
)
def test_dealer_free_products_equal_the_integer_products(
    n: int, data: st.DataObject, pairs: list[tuple[int, int]]
) -> None:
    t = data.draw(st.integers(1, n))
    a = np.array([p for p, _ in pairs], dtype=np.int64)
    b = np.array([q for _, q in pairs], dtype=np.int64)

    async def program(party: Party) -> list[int]:
        x = await party.input(a, owner=1)
        y = await party.input(b, owner=n)
        return [int(v) for v in await party.open(await party.mul(x, y))]

    for result in run(n, t, program, triples="ot"):
        assert result == [p * q for p, q in pairs]


@mpc_settings
@given(
    n=st.integers(1, 5),
    shift=st.integers(min_value=1, max_value=40),
    values=st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=20),
)
def test_dealer_free_truncation_stays_within_its_documented_error(
    n: int, shift: int, values: list[int]
) -> None:
    low, high = truncation_error_bound(n)

    async def program(party: Party) -> list[int]:
        x = await party.input(np.array(values, dtype=np.int64), owner=1)
        return [int(v) for v in await party.open(await party.truncate(x, shift))]

    for result in run(n, max(1, n - 1), program, triples="ot"):
        for v, got in zip(values, result, strict=True):
            assert low <= got - (v >> shift) <= high

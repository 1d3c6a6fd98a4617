"""The key holders' ceremony: a threshold Paillier key that no machine ever held whole.

:func:`generate_key` runs on every holder at once, over the mutually authenticated TLS mesh
(:func:`smpcloud.mpc.tcp.connect_mesh`) or any :class:`~smpcloud.mpc.transport.Transport`:

1. **Search** for N = pq in batches of candidates (:mod:`.sieve`, :mod:`.modulus`): sieve
   residues, open the products, trial-divide, test biprimality; a batch without a biprime
   (the expected case, several times) starts the next one.
2. **Key** (:mod:`.exponent`): shares of d = 0 mod phi(N), 1 mod N over the integers.
3. **Publish**: the verification base v (hashed from N, so nobody chooses it); each holder's
   verification key v_j = v^(Delta s_j) mod N^2 and its own freshly generated signing key's
   verify key, sent to all; every holder builds the same
   :class:`~smpcloud.crypto.threshold.ThresholdPublicKey` and roster.
4. **Self-test**: a ciphertext of a public test value (hashed from the key) is partially
   decrypted by every holder, with the usual proofs; every holder checks every proof (a wrong
   one names its holder) and that EVERY set of t holders decrypts it correctly.
5. **Agreement**: holders exchange the digest of the public key and roster; any difference
   names the holders that disagree. Only then does the caller write files.

Security model (also in docs/security.md): semi-honest holders with an honest majority
(n >= 3, fewer than n/2 colluding, tau = floor((n - 1) / 2)): no coalition of tau holders
learns anything about p, q or phi(N) beyond N (BGW, perfectly; the masks of theta' and X,
within 2^-128), and no t - 1 holders learn anything about d. A holder that deviates can make
the ceremony fail or, undetected, bias which candidate is kept; it can make a non-biprime
pass the test (then the key would not be secure; an actively secure protocol needs the
zero-knowledge proofs of Chen et al. 2021, not implemented); it cannot make the others write
a key that does not decrypt (the X check and the self-test with every t-subset catch it, and
a bad partial proof names it). Silent or disconnected holders are named
(:class:`~smpcloud.errors.KeyGenerationError`). Proofs of partial decryption without safe
primes: sound under the assumption that no holder can find elements of small order in the
squares mod N^2 (the low-order assumption, Boneh-Bünz-Fisch 2018; see docs/security.md).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field

import gmpy2

from smpcloud.crypto import threshold
from smpcloud.crypto.biprime import (
    assemble_shares,
    check_modulus,
    expected_candidates,
    sieve_parameters,
)
from smpcloud.crypto.integer_sharing import delta_of
from smpcloud.crypto.paillier import MIN_SECURE_BITS, Ciphertext, PublicKey
from smpcloud.crypto.signatures import Roster, SigningKey, VerifyKey
from smpcloud.errors import InvalidInputError, KeyGenerationError, VerificationError
from smpcloud.mpc.dkg.exchange import Exchange, Progress, pack, unpack, width_of
from smpcloud.mpc.dkg.exponent import NotAUnitError, exponent_shares, invert_phi
from smpcloud.mpc.dkg.modulus import Candidate, find_biprime, open_moduli, trial_division
from smpcloud.mpc.dkg.sieve import sieve
from smpcloud.mpc.transport import Transport

#: Candidates per batch by default: half the expected number before a biprime, within
#: [MIN_BATCH, MAX_BATCH] (a batch's sieve and products cost the same whether or not it holds
#: the biprime; the biprimality tests stop at the first one).
MIN_BATCH = 512
MAX_BATCH = 8192
#: Batches tried before giving up (about 8x the expected number at 2048 bits).
MAX_BATCHES = 64
_CONTEXT = b"smpcloud/dkg/v1"


@dataclass(frozen=True, slots=True)
class KeygenStats:
    """What the ceremony did: for progress, benchmarks and the operator's summary."""

    seconds: float
    batches: int
    candidates: int
    biprimality_tests: int
    sieve_rounds: int
    bytes_sent: int
    restarts: int = 0
    search_seconds: float = 0.0

    @property
    def expected_seconds(self) -> float:
        """The time of an average search at this run's speed: the search's seconds per
        candidate times the expected number of candidates, plus the rest of the ceremony.
        A single run is one draw of a geometric search; this figure is far steadier."""
        if not self.candidates:
            return self.seconds
        return (
            self.search_seconds / self.candidates * self.expected_candidates
            + self.seconds
            - self.search_seconds
        )

    expected_candidates: float = 0.0


@dataclass(frozen=True, slots=True)
class KeygenResult:
    """One holder's outcome: the shared public key, its own key share, roster and signing key."""

    public_key: threshold.ThresholdPublicKey
    share: threshold.KeyShare = field(repr=False)
    roster: Roster
    signing_key: SigningKey = field(repr=False)
    stats: KeygenStats


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


async def _search(
    exchange: Exchange,
    *,
    bits: int,
    tau: int,
    batch: int,
    progress: Progress | None,
    counters: dict[str, int],
) -> Candidate:
    params = sieve_parameters(bits, len(exchange.holders))
    first = exchange.me == exchange.holders[0]
    expected = expected_candidates(bits, len(exchange.holders))
    for number in range(1, MAX_BATCHES + 1):
        clock = [time.perf_counter()]
        a, b, rounds = await sieve(exchange, params, batch, tau)
        counters["sieve_rounds"] += rounds
        p_shares = assemble_shares(params, a, first=first)
        q_shares = assemble_shares(params, b, first=first)
        clock.append(time.perf_counter())
        moduli = await open_moduli(exchange, p_shares, q_shares, bits=bits, tau=tau)
        for k, modulus in enumerate(moduli):
            if modulus.bit_length() != bits:
                raise KeyGenerationError(
                    f"candidate {k} has {modulus.bit_length()} bits, not {bits}: some holder "
                    "sent shares outside their range"
                )
        clock.append(time.perf_counter())
        survivors = await trial_division(exchange, moduli)
        clock.append(time.perf_counter())
        candidates = [Candidate(k, moduli[k], p_shares[k], q_shares[k]) for k in survivors]
        found, tested = await find_biprime(exchange, candidates, _CONTEXT)
        clock.append(time.perf_counter())
        counters["batches"] = number
        counters["candidates"] += batch
        counters["tests"] += tested
        phases = zip(
            ("sieve", "products", "trial division", "tests"), clock, clock[1:], strict=False
        )
        timing = ", ".join(f"{name} {end - begin:.1f} s" for name, begin, end in phases)
        _say(
            progress,
            f"batch {number}: {batch} candidates, {len(survivors)} after trial division, "
            f"{tested} tested{', biprime found' if found else ''} "
            f"({counters['candidates']:,} so far, about {expected:,.0f} expected; {timing})",
        )
        if found is not None:
            check_modulus(found.modulus, bits)
            return found
    raise KeyGenerationError(
        f"no biprime in {MAX_BATCHES} batches of {batch} candidates (expected one in about "
        f"{expected:,.0f}); this is improbable unless a holder deviates"
    )


def _verification_base(modulus: int) -> int:
    n2 = modulus * modulus
    h = hashlib.shake_256(_CONTEXT + b"/v")
    h.update(modulus.to_bytes((modulus.bit_length() + 7) // 8, "big"))
    r = int.from_bytes(h.digest((n2.bit_length() + 7) // 8 + 16), "big") % n2
    return r * r % n2


def _test_ciphertext(pk: threshold.ThresholdPublicKey) -> tuple[int, Ciphertext]:
    n = pk.n
    h = hashlib.shake_256(_CONTEXT + b"/self-test" + pk.digest)
    raw = h.digest(2 * ((n.bit_length() + 7) // 8 + 16))
    half = len(raw) // 2
    message = int.from_bytes(raw[:half], "big") % n
    r = int.from_bytes(raw[half:], "big") % n
    n2 = n * n
    value = (1 + message * n) * int(gmpy2.powmod(r, n, n2)) % n2
    return message, Ciphertext(pk.public_key, value)


async def _publish(
    exchange: Exchange, modulus: int, secret: int, threshold_t: int, signing_key: SigningKey
) -> tuple[threshold.ThresholdPublicKey, Roster]:
    n = len(exchange.holders)
    n2 = modulus * modulus
    v = _verification_base(modulus)
    mine = int(gmpy2.powmod(v, delta_of(n) * secret, n2))
    width = width_of(n2)
    message = pack([mine], width) + signing_key.verify_key.to_text().encode()
    received = await exchange.broadcast("publish verification keys", message)
    keys = {exchange.me: mine}
    verify_keys = {exchange.me: signing_key.verify_key}
    for peer, data in received.items():
        keys[peer] = unpack(data[:width], width, 1, sender=peer, what="verification key")[0]
        try:
            verify_keys[peer] = VerifyKey.from_text(data[width:].decode("ascii"))
        except (InvalidInputError, UnicodeDecodeError) as exc:
            raise KeyGenerationError(
                f"holder {peer} sent a malformed signing verify key: {exc}", holders=(peer,)
            ) from None
    try:
        pk = threshold.ThresholdPublicKey(
            PublicKey(modulus),
            n,
            threshold_t,
            v,
            tuple(keys[h] for h in exchange.holders),
        )
    except InvalidInputError as exc:
        raise KeyGenerationError(f"the published verification keys are invalid: {exc}") from None
    return pk, Roster(threshold_t, verify_keys)


async def _self_test(exchange: Exchange, share: threshold.KeyShare) -> None:
    pk = share.public
    message, ciphertext = _test_ciphertext(pk)
    mine = share.partial_decrypt(ciphertext)
    received = await exchange.broadcast(
        "self-test decryption", json.dumps(threshold.partial_to_json(mine)).encode()
    )
    partials = {exchange.me: mine}
    for peer, data in received.items():
        try:
            partial = threshold.partial_from_json(pk, ciphertext, json.loads(data))
        except (InvalidInputError, ValueError) as exc:
            raise KeyGenerationError(
                f"holder {peer} sent a malformed self-test partial: {exc}", holders=(peer,)
            ) from None
        if partial.index != peer:
            raise KeyGenerationError(f"holder {peer} sent holder {partial.index}'s partial")
        partials[peer] = partial
    wrong = tuple(h for h, p in partials.items() if not threshold.verify_partial(pk, p))
    if wrong:
        raise KeyGenerationError(
            f"the self-test partial decryption of holder{'s' if len(wrong) > 1 else ''} "
            f"{', '.join(map(str, wrong))} does not verify against its verification key",
            holders=wrong,
        )
    for subset in itertools.combinations(exchange.holders, pk.threshold):
        try:
            decrypted = threshold.combine(pk, [partials[h] for h in subset], verify=False)
        except VerificationError:
            decrypted = None
        if decrypted is None or decrypted % pk.n != message:
            raise KeyGenerationError(
                f"holders {', '.join(map(str, subset))} together do not decrypt the "
                "self-test ciphertext: some holder deviated"
            )


async def _agree(exchange: Exchange, pk: threshold.ThresholdPublicKey, roster: Roster) -> None:
    digest = hashlib.sha256(pk.digest + roster.digest().encode()).digest()
    received = await exchange.broadcast("agreement", digest)
    differ = tuple(p for p, d in received.items() if d != digest)
    if differ:
        raise KeyGenerationError(
            f"holder{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))} ended with "
            "another public key or roster than this holder",
            holders=differ,
        )


def check_parameters(holders: int, threshold_t: int, bits: int, *, insecure: bool) -> None:
    """Refuse parameters the ceremony cannot run with.

    Raises:
        InvalidInputError: fewer than 3 holders (an honest majority needs 3), t outside
            1..n, or a modulus below 2048 bits without ``insecure``.
    """
    if holders < 3:
        raise InvalidInputError(
            f"{holders} key holders: distributed key generation needs at least 3 (it assumes "
            "an honest majority)"
        )
    if not 1 <= threshold_t <= holders:
        raise InvalidInputError(f"threshold t={threshold_t} must be in 1..{holders}")
    if bits < MIN_SECURE_BITS and not insecure:
        raise InvalidInputError(
            f"{bits}-bit keys are insecure; use {MIN_SECURE_BITS} or more (or insecure=True)"
        )
    sieve_parameters(bits, holders)  # raises on odd or tiny sizes


async def generate_key(
    transport: Transport,
    holders: tuple[int, ...],
    *,
    threshold_t: int,
    bits: int = 2048,
    session: str = "keygen",
    timeout: float = 120.0,
    batch: int | None = None,
    progress: Progress | None = None,
    insecure: bool = False,
) -> KeygenResult:
    """Run the whole ceremony as holder ``transport.party``; every holder calls this at once.

    Args:
        transport: this holder's connections to every other holder.
        holders: every holder's id (1..n, this one's included).
        threshold_t: t, the number of holders needed to decrypt.
        bits: modulus size (2048 or more; smaller only with ``insecure``, for tests).
        session: a name shared by the holders of this ceremony (part of every tag).
        timeout: seconds to wait for any holder in any round before naming it as silent.
        batch: candidates per batch (default: see MIN_BATCH).
        progress: called with one line per batch and phase.
        insecure: allow moduli below 2048 bits (tests only).

    Returns:
        This holder's result: the public key (the same at every holder), its key share, the
        roster of the holders' signing verify keys, its own signing key, and statistics.

    Raises:
        InvalidInputError: bad parameters (see :func:`check_parameters`).
        KeyGenerationError: a holder went silent or disconnected (named), sent a malformed
            message, or the result failed a check; nothing was kept.
    """
    check_parameters(len(holders), threshold_t, bits, insecure=insecure)
    exchange = Exchange(transport, holders, session=session, timeout=timeout)
    n = len(exchange.holders)
    tau = (n - 1) // 2
    if batch is None:
        batch = min(MAX_BATCH, max(MIN_BATCH, round(expected_candidates(bits, n) / 2)))
    elif not MIN_BATCH // 16 <= batch <= MAX_BATCH:
        raise InvalidInputError(f"batch {batch} outside {MIN_BATCH // 16}..{MAX_BATCH}")
    start = time.perf_counter()
    counters = {"batches": 0, "candidates": 0, "tests": 0, "sieve_rounds": 0}
    restarts = 0
    signing_key = SigningKey.generate()
    search_seconds = 0.0
    while True:
        _say(progress, f"searching a {bits}-bit biprime among {n} holders (t = {threshold_t})")
        searching = time.perf_counter()
        candidate = await _search(
            exchange, bits=bits, tau=tau, batch=batch, progress=progress, counters=counters
        )
        search_seconds += time.perf_counter() - searching
        _say(progress, f"biprime found after {counters['candidates']} candidates; sharing the key")
        try:
            gamma = await invert_phi(exchange, candidate, tau=tau)
        except NotAUnitError:
            restarts += 1
            continue
        break
    secret = await exponent_shares(exchange, candidate, gamma, tau=tau, threshold=threshold_t)
    pk, roster = await _publish(exchange, candidate.modulus, secret, threshold_t, signing_key)
    share = threshold.KeyShare(pk, exchange.me, secret)
    _say(progress, "self-test: every set of t holders decrypts a test ciphertext")
    await _self_test(exchange, share)
    await _agree(exchange, pk, roster)
    stats = KeygenStats(
        seconds=time.perf_counter() - start,
        batches=counters["batches"],
        candidates=counters["candidates"],
        biprimality_tests=counters["tests"],
        sieve_rounds=counters["sieve_rounds"],
        bytes_sent=exchange.bytes_sent,
        restarts=restarts,
        search_seconds=search_seconds,
        expected_candidates=expected_candidates(bits, n),
    )
    return KeygenResult(pk, share, roster, signing_key, stats)


__all__ = [
    "MAX_BATCH",
    "MIN_BATCH",
    "KeygenResult",
    "KeygenStats",
    "check_parameters",
    "generate_key",
]

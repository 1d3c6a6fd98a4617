"""TNO's distributed Paillier key generation, run as N real processes, for issue 16's benchmark.

This is the other side of ``bench_dkg.py``'s comparison: TNO PET Lab's Python implementation of
eprint 2019/1136 (PyPI ``tno.mpc.protocols.distributed-keygen``), which the issue measured here
at 39 s for 1024 bits among 3 parties. It is NOT part of smpcloud and imports nothing from it:
it runs in TNO's own virtualenv, which ``benchmarks/tno_env.py`` creates (pinned versions, with
gmpy2, TNO's fastest configuration). It is one file (past 600 lines, most of them this
docstring) on purpose: it runs where nothing of this repository is importable, and starts
itself again as each party. Run it as::

    $(python benchmarks/tno_env.py) benchmarks/tno_dkg.py --parties 3 --bits 1024

It prints ONE JSON line on stdout, whatever happens::

    {"parties": 3, "bits": 1024, "seconds": 41.2, "status": "ok", "detail": {...}}

``status`` is ``"ok"``, ``"timeout"`` (every process was killed after ``--timeout`` seconds of
key generation; ``seconds`` is then the time at the kill, a lower bound) or ``"error"``
(``detail["message"]`` says why). The exit status is 0 exactly when ``status`` is ``"ok"``.

How it runs and what is timed. The parent starts N processes (``--party i``, this same file).
Each builds TNO's communication ``Pool`` (its own aiohttp HTTP server on 127.0.0.1 and one
client per other party), by default over mutual TLS with a throwaway CA and one key per party
made here with the ``openssl`` command (``--no-tls`` for plain HTTP), imports everything, and
says "ready". When all are ready the parent says "go" to all at once; each party times
``DistributedPaillier.from_security_parameter`` (the key generation proper: party indices,
candidate sharing, biprimality tests, the integer sharing of the secret key) and reports.
``seconds`` is the maximum over the parties, i.e. until every party holds its key share;
``detail["wall_seconds"]`` is the parent's view of the same span (go until the last report).
Afterwards, untimed, the parties check the key: party 0 encrypts 42, all decrypt jointly, and
every party must get 42 and the same modulus of at least ``--bits`` bits.

``detail`` also gives the modulus's real length, the bytes the parties sent, the parameters,
the package versions, and ``detail["search"]``: the rounds of TNO's modulus search (100
candidate pairs each), how many candidates trial division and the biprimality test threw away
(from TNO's own log lines), the time per round (between round starts: each party reports when
a round starts, through a thin wrapper around TNO's per-round ``_generate_pq``), and
``expected_seconds``, the time of an average search at that pace (see "luck" below). A run
that times out still gives its pace.

Ports. TNO's ``Pool.add_http_server`` only takes a port number (it binds inside its own
task), so no listening socket can be handed over. The parent therefore picks N ports at random
in 20000-31999 (below this machine's ephemeral range, so no outgoing connection takes them),
checks each is free by binding it, and hands the numbers over; a party that still finds its
port taken (``EADDRINUSE``) says so before any key material exists, and the parent kills every
party and retries the whole run on new ports, up to ``PORT_ATTEMPTS`` times.

Parameters (``from_security_parameter``'s arguments), and how they line up with ours (3
holders, semi-honest, honest majority, at least 40 biprimality tests, 2^-128 statistical
hiding):

* key length ``--bits``: TNO's ``key_length``, as ours. TNO makes p and q sums of N shares of
  ``bits / 2`` bits each (top bit set), so its modulus comes out 2 to 4 bits longer than asked
  (1027 bits for 1024 among 3 parties); ``detail["modulus_bits"]`` gives the real length. A
  modulus 3 bits longer costs about 1% more per modular multiplication, which is left as is:
  it is what TNO's "1024-bit key" means.
* corruption threshold ``--threshold``, default ``(N - 1) // 2``: TNO's protocol is semi-honest
  and needs n >= 2t + 1 (it multiplies two degree-t sharings), so the largest t it allows is an
  honest majority, the same model as ours (t = 1 for 3 parties, TNO's own default).
* statistical security of the integer secret sharing ``--stat-sec``, default 128 (TNO's default
  is 40): it sets how well the shares of lambda and beta hide them, which ours does at 2^-128;
  it is used once, on two sharings, so it costs TNO almost nothing.
* biprimality tests ``--biprime-tests``, default 40 (TNO's default): N is accepted after 40
  passing tests, an error below 2^-40, the lower bound of ours.
* sieving bound ``--sieve``, default 2000 (TNO's default): TNO reconstructs each candidate N and
  discards it if a prime below this bound divides it; it sieves N, not the shares of p and q.
* candidates per round ``--batch-size``, default 100 (TNO's default): pairs (p, q) generated,
  shared and tested per communication round.

What it protects and reveals. Nothing here is a key anyone uses: the key shares live in the
party processes' memory and die with them, and the TLS keys are made in a temporary directory
that is removed after the run. TNO's protocol itself (semi-honest, honest majority: up to t of
the n parties may pool their views but follow the protocol) reveals to every party each
candidate modulus N, accepted or not, and the biprimality test's values, as any protocol of
this Boneh-Franklin kind does; the shares of p, q and the secret key stay hidden. It gives no
protection against a party that deviates, and none is claimed for the comparison.

Where the comparison is not equal. First, luck: TNO's running time is one draw of a geometric
search. Its p and q are each prime with probability about 2 / ln(2^513) = 1/178 at 1024 bits, so
it draws about 32,000 pairs (320 rounds of 100) on average, and one run can end after 3 rounds
or after 1,000. Seen here at 1024 bits among 3 parties over TLS: 3.5 s (3 rounds, plain HTTP),
90 s, 223 s (229 rounds) and 360 s (278 rounds), at about 1 s per round while other jobs shared
the 2 cores, so an average run takes about 5 minutes; the issue's 39 s (about 40 rounds) was
most likely a lucky draw, as about one run in eight is. At 2048 bits a round took 7 s and an
average search is about 1,260 rounds, some 2.5 hours. A single run says little: compare medians
over several runs, and ``detail["search"]["expected_seconds"]``, this run's time per round times
the average number of rounds, which is far steadier. Then: TNO's p and q are sums of random
shares and are tested only through N (trial division of N, then the biprimality test), so it
tries far more candidates than a protocol that sieves the shares of p and q; that is its design,
measured as published. TNO's ``Pool`` speaks HTTP POSTs (aiohttp, msgpack) and retries failed
sends every second; with TLS both sides pay for the handshakes. TNO picks the jointly random
biprimality bases and the party order with Python's ``random`` module (not a CSPRNG); this
changes nothing in the timing. Python and GMP (through gmpy2) are the same on both sides, and
all N processes share this machine's cores, as ours do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

#: The distribution whose key generation is measured.
TNO_DISTRIBUTION = "tno.mpc.protocols.distributed_keygen"
#: Whole runs tried on fresh ports before giving up on a port clash.
PORT_ATTEMPTS = 5
#: Ports are drawn from here: below the ephemeral range (32768-60999 on this machine).
PORT_RANGE = (20000, 32000)
#: Seconds allowed for starting the parties (imports, servers) and for the untimed check.
SETUP_SECONDS = 120.0
#: The plaintext the untimed check encrypts and decrypts jointly.
CHECK_VALUE = 42
#: Exit status of a party whose port was taken.
EXIT_PORT_TAKEN = 3


@dataclass(frozen=True)
class Settings:
    """One run's parameters, as handed to every party.

    Attributes:
        parties: number of key holders (processes).
        bits: bit length of the modulus N.
        threshold: corruption threshold t (n >= 2t + 1).
        stat_sec: statistical security of the integer secret sharing, in bits.
        biprime_tests: number of biprimality tests N must pass.
        sieve: N is discarded if a prime up to this bound divides it.
        batch_size: (p, q) candidate pairs per round.
        tls: whether the parties talk over mutual TLS.
        check: whether to check the key afterwards (untimed joint decryption).
    """

    parties: int
    bits: int
    threshold: int
    stat_sec: int
    biprime_tests: int
    sieve: int
    batch_size: int
    tls: bool
    check: bool


# ---------------------------------------------------------------------------------------------
# One party (a child process)
# ---------------------------------------------------------------------------------------------


def _protocol_channel() -> IO[str]:
    """Return a private copy of stdout for the messages to the parent, and point fd 1 at stderr
    so that nothing the library prints can be mistaken for one of them."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return channel


def _say(channel: IO[str], event: str, **fields: Any) -> None:
    channel.write(json.dumps({"event": event, **fields}) + "\n")
    channel.flush()


class _RoundCounter(logging.Handler):
    """Collect, from TNO's own log lines at the end of its modulus search, how many rounds it
    took and how many candidates N the trial division and the biprimality test threw away."""

    PATTERNS = (
        ("sieved_out", "rounds", r"Checked (\d+) primes for small prime divisors in (\d+) rounds"),
        ("failed_biprimality", None, r"Checked (\d+) candidates for biprimality"),
    )

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.facts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for first, second, pattern in self.PATTERNS:
            if match := re.match(pattern, text):
                self.facts[first] = int(match.group(1))
                if second is not None:
                    self.facts[second] = int(match.group(2))


async def _read_command() -> str:
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def _party(index: int, ports: list[int], settings: Settings, certs: Path | None) -> int:
    """Run party ``index``: set up the pool, wait for "go", generate the key, then check it."""
    channel = _protocol_channel()
    from tno.mpc.communication import Pool
    from tno.mpc.protocols.distributed_keygen import DistributedPaillier

    counter = _RoundCounter()
    tno_logger = logging.getLogger("tno.mpc.protocols.distributed_keygen")
    tno_logger.setLevel(logging.INFO)
    tno_logger.addHandler(counter)
    tno_logger.propagate = False
    if certs is None:
        pool = Pool()
    else:
        pool = Pool(
            key=certs / f"party{index}.key",
            cert=certs / f"party{index}.crt",
            ca_cert=certs / "ca.crt",
        )
    pool.add_http_server(port=ports[index], addr="127.0.0.1")
    server = pool.http_server
    if server is None:
        _say(channel, "failed", message="TNO's Pool made no HTTP server")
        return 1
    try:
        await server.server_task  # returns once the site listens; raises if the bind failed
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _say(channel, "port-taken", port=ports[index])
            return EXIT_PORT_TAKEN
        raise
    for other, port in enumerate(ports):
        if other != index:
            pool.add_http_client(f"party{other}", "127.0.0.1", port)
    while not all(hasattr(client, "session") for client in pool.pool_handlers.values()):
        await asyncio.sleep(0)  # the clients' HTTP sessions are made in tasks of this loop
    _say(channel, "ready")

    # Tell the parent when each round of TNO's modulus search starts, so that a run that times
    # out still shows its pace: TNO's compute_modulus calls _generate_pq once per round (in the
    # pinned version). A subclass would not do: TNO serializes ciphertexts by class name.
    generate_pq = DistributedPaillier._generate_pq

    async def counted_generate_pq(_cls: type, *args: Any, **kwargs: Any) -> Any:
        _say(channel, "round")
        return await generate_pq(*args, **kwargs)

    DistributedPaillier._generate_pq = classmethod(counted_generate_pq)

    if await _read_command() != "go":
        return 1
    start = time.perf_counter()
    scheme = await DistributedPaillier.from_security_parameter(
        pool,
        corruption_threshold=settings.threshold,
        key_length=settings.bits,
        prime_threshold=settings.sieve,
        correct_param_biprime=settings.biprime_tests,
        stat_sec_shamir=settings.stat_sec,
        distributed=True,
        batch_size=settings.batch_size,
    )
    seconds = time.perf_counter() - start
    modulus = int(scheme.public_key.n)
    _say(
        channel,
        "done",
        seconds=seconds,
        modulus_bits=modulus.bit_length(),
        modulus_sha256=hashlib.sha256(str(modulus).encode()).hexdigest()[:16],
        bytes_sent=sum(client.total_bytes_sent for client in pool.pool_handlers.values()),
        search=counter.facts,
    )

    command = await _read_command()
    if command == "check":
        if index == 0:
            ciphertext = scheme.encrypt(CHECK_VALUE)
            pool.async_broadcast(ciphertext, msg_id="bench-check")
        else:
            ciphertext = await pool.recv("party0", msg_id="bench-check")
        plaintext = await scheme.decrypt(ciphertext)
        _say(channel, "checked", ok=plaintext == CHECK_VALUE)
        command = await _read_command()
    await pool.shutdown()
    return 0 if command == "exit" else 1


# ---------------------------------------------------------------------------------------------
# The parent: ports, certificates, processes, timing
# ---------------------------------------------------------------------------------------------


class _PortTaken(Exception):
    """A party found its port taken; the whole run is tried again on other ports."""


class _RunFailed(Exception):
    """The run cannot give a figure; the message says why."""


def _pick_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports from ``PORT_RANGE`` that were free a moment ago."""
    rng = random.SystemRandom()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(*PORT_RANGE)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def _make_certificates(directory: Path, parties: int) -> None:
    """Make a throwaway CA and one EC P-256 key and certificate per party in ``directory``.

    Raises:
        _RunFailed: if the ``openssl`` command is missing or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise _RunFailed("the openssl command is needed for --tls (or run with --no-tls)")

    def run_openssl(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise _RunFailed(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")

    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_key, ca_crt = str(directory / "ca.key"), str(directory / "ca.crt")
    run_openssl("req", "-x509", *new_key, "-days", "2", "-subj", "/CN=tno-bench-ca",
                "-keyout", ca_key, "-out", ca_crt)  # fmt: skip
    extensions = directory / "party.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1\n"
    )
    for index in range(parties):
        stem = str(directory / f"party{index}")
        run_openssl("req", *new_key, "-subj", f"/CN=party{index}",
                    "-keyout", f"{stem}.key", "-out", f"{stem}.csr")  # fmt: skip
        run_openssl("x509", "-req", "-in", f"{stem}.csr", "-days", "2",
                    "-set_serial", str(index + 1), "-CA", ca_crt, "-CAkey", ca_key,
                    "-extfile", str(extensions), "-out", f"{stem}.crt")  # fmt: skip


class _Parties:
    """The N party processes of one attempt, with a queue of their messages to the parent."""

    def __init__(self, settings: Settings, ports: list[int], workdir: Path) -> None:
        #: (rounds started, perf_counter when the last one started), as party 0 reports them.
        self.progress = (0, 0.0)
        self.messages: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self.logs = [workdir / f"party{index}.log" for index in range(settings.parties)]
        common = [
            "--parties",
            str(settings.parties),
            "--bits",
            str(settings.bits),
            "--threshold",
            str(settings.threshold),
            "--stat-sec",
            str(settings.stat_sec),
            "--biprime-tests",
            str(settings.biprime_tests),
            "--sieve",
            str(settings.sieve),
            "--batch-size",
            str(settings.batch_size),
            "--ports",
            ",".join(map(str, ports)),
            "--tls" if settings.tls else "--no-tls",
            "--certs",
            str(workdir),
        ]
        self.processes: list[subprocess.Popen[str]] = []
        for index, log in enumerate(self.logs):
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, __file__, "--party", str(index), *common],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                )
            self.processes.append(process)
            threading.Thread(target=self._listen, args=(index, process), daemon=True).start()

    def _listen(self, index: int, process: subprocess.Popen[str]) -> None:
        stream = process.stdout
        if stream is not None:
            for line in stream:
                with contextlib.suppress(ValueError):
                    self.messages.put((index, json.loads(line)))
        self.messages.put((index, None))

    def tell_all(self, command: str) -> None:
        """Send one command line to every party."""
        for process in self.processes:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.write(command + "\n")
                    process.stdin.flush()

    def gather(self, event: str, deadline: float) -> dict[int, dict[str, Any]] | None:
        """Wait for ``event`` from every party; None if ``deadline`` (perf_counter) passes.

        Raises:
            _PortTaken: if a party reports its port taken.
            _RunFailed: if a party fails or exits first.
        """
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < len(self.processes):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            try:
                index, message = self.messages.get(timeout=remaining)
            except queue.Empty:
                return None
            if message is not None and message.get("event") == event:
                answers[index] = message
            elif message is not None and message.get("event") == "round":
                if index == 0:
                    self.progress = (self.progress[0] + 1, time.perf_counter())
            elif message is not None and message.get("event") == "port-taken":
                raise _PortTaken
            else:
                why = "exited" if message is None else str(message)
                raise _RunFailed(f"party {index} {why} waiting for {event}: {self.tail(index)}")
        return answers

    def tail(self, index: int) -> str:
        """Return the last lines party ``index`` wrote on stderr."""
        text = self.logs[index].read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:])[-500:]

    def stop(self) -> None:
        """Let the parties exit, and kill any that do not within a few seconds."""
        self.tell_all("exit")
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Kill every party at once."""
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()


def _expected_candidates(modulus_bits: int) -> float:
    """Return how many (p, q) pairs TNO draws on average before both are prime.

    TNO's p and q are odd numbers of about ``modulus_bits / 2`` bits that it only tests
    through N, so each is prime with probability about 2 / ln(2^(modulus_bits / 2)) (the prime
    density among odd numbers) and the number of pairs is geometric with this mean.
    """
    prime_chance = 2 / (modulus_bits / 2 * math.log(2))
    return 1 / prime_chance**2


def _pace(
    progress: tuple[int, float], go: float, modulus_bits: int, batch_size: int
) -> dict[str, float]:
    """Return how fast TNO's modulus search went and what that pace gives on average.

    Args:
        progress: rounds started and when the last one started (perf_counter), from party 0.
        go: when the key generation started (perf_counter).
        modulus_bits: bit length of N (found, or expected).
        batch_size: candidate pairs per round.

    Returns:
        ``rounds_started``, and with two rounds or more ``seconds_per_round`` (time between
        round starts, so the fixed start and end of the protocol are left out),
        ``expected_rounds`` and ``expected_seconds`` (their product: the time of an average
        search at this run's pace).
    """
    rounds, last = progress
    pace: dict[str, float] = {"rounds_started": rounds}
    if rounds > 1:
        per_round = (last - go) / (rounds - 1)
        expected_rounds = _expected_candidates(modulus_bits) / batch_size
        pace["seconds_per_round"] = round(per_round, 3)
        pace["expected_rounds"] = round(expected_rounds)
        pace["expected_seconds"] = round(per_round * expected_rounds, 1)
    return pace


def _attempt(settings: Settings, timeout: float, workdir: Path) -> dict[str, Any]:
    """Run one attempt on fresh ports and return the result's fields besides parties/bits.

    Raises:
        _PortTaken: if a party's port was taken (the caller retries).
        _RunFailed: if the run fails otherwise.
    """
    parties = _Parties(settings, _pick_ports(settings.parties), workdir)
    try:
        if parties.gather("ready", time.perf_counter() + SETUP_SECONDS) is None:
            raise _RunFailed(f"the parties were not ready within {SETUP_SECONDS:.0f} s")
        go = time.perf_counter()
        parties.tell_all("go")
        done = parties.gather("done", go + timeout)
        wall = time.perf_counter() - go
        if done is None:
            parties.kill()
            # TNO's N comes out about 3 bits longer than asked (see the module docstring).
            search = _pace(parties.progress, go, settings.bits + 3, settings.batch_size)
            return {"seconds": round(wall, 2), "status": "timeout", "detail": {"search": search}}
        per_party = [done[index]["seconds"] for index in sorted(done)]
        fingerprints = {answer["modulus_sha256"] for answer in done.values()}
        lengths = {answer["modulus_bits"] for answer in done.values()}
        if len(fingerprints) != 1 or len(lengths) != 1 or min(lengths) < settings.bits:
            raise _RunFailed(f"the parties disagree on N or it is short: {sorted(lengths)}")
        modulus_bits = lengths.pop()
        detail: dict[str, Any] = {
            "modulus_bits": modulus_bits,
            "per_party_seconds": [round(value, 3) for value in per_party],
            "wall_seconds": round(wall, 3),
            "bytes_sent": sum(answer["bytes_sent"] for answer in done.values()),
            "search": {
                "candidates": parties.progress[0] * settings.batch_size,
                **done[0]["search"],
                **_pace(parties.progress, go, modulus_bits, settings.batch_size),
            },
        }
        if settings.check:
            parties.tell_all("check")
            checked = parties.gather("checked", time.perf_counter() + SETUP_SECONDS)
            if checked is None or not all(answer["ok"] for answer in checked.values()):
                raise _RunFailed("the joint decryption check failed")
            detail["check"] = f"joint decryption of Enc({CHECK_VALUE}) gave {CHECK_VALUE}"
        parties.stop()
        return {"seconds": round(max(per_party), 3), "status": "ok", "detail": detail}
    except BaseException:
        parties.kill()
        raise


def _versions() -> dict[str, str]:
    versions = {}
    for name in (TNO_DISTRIBUTION, "tno.mpc.communication", "gmpy2"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run(settings: Settings, timeout: float) -> dict[str, Any]:
    """Run TNO's distributed key generation once and return the JSON-ready result.

    Args:
        settings: the run's parameters.
        timeout: seconds of key generation after which every party is killed.

    Returns:
        ``{"parties", "bits", "seconds", "status", "detail"}`` as described in the module
        docstring; ``detail`` also holds the parameters and the package versions.
    """
    result: dict[str, Any] = {"parties": settings.parties, "bits": settings.bits}
    context = {"settings": asdict(settings), "versions": _versions(), "timeout": timeout}
    with tempfile.TemporaryDirectory(prefix="tno-dkg-") as name:
        workdir = Path(name)
        try:
            if settings.tls:
                _make_certificates(workdir, settings.parties)
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    outcome = _attempt(settings, timeout, workdir)
                except _PortTaken:
                    continue
                outcome["detail"].update(context, attempts=attempt)
                return {**result, **outcome}
            raise _RunFailed(f"a port was taken on each of {PORT_ATTEMPTS} attempts")
        except _RunFailed as exc:
            detail = {"message": str(exc), **context}
            return {**result, "seconds": None, "status": "error", "detail": detail}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parties", type=int, default=3, help="key holders (default 3)")
    parser.add_argument("--bits", type=int, default=1024, help="bits of N (default 1024)")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds of key generation (default 900)"
    )
    parser.add_argument("--threshold", type=int, help="corruption threshold (default (N-1)//2)")
    parser.add_argument("--stat-sec", type=int, default=128, help="default 128 (TNO's: 40)")
    parser.add_argument("--biprime-tests", type=int, default=40, help="default 40")
    parser.add_argument("--sieve", type=int, default=2000, help="default 2000")
    parser.add_argument("--batch-size", type=int, default=100, help="default 100")
    parser.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=True, help="mutual TLS"
    )
    parser.add_argument(
        "--check", action=argparse.BooleanOptionalAction, default=True, help="untimed check"
    )
    parser.add_argument("--party", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmark (or, with --party, one party)."""
    args = _parser().parse_args(argv)
    threshold = (args.parties - 1) // 2 if args.threshold is None else args.threshold
    settings = Settings(
        parties=args.parties,
        bits=args.bits,
        threshold=threshold,
        stat_sec=args.stat_sec,
        biprime_tests=args.biprime_tests,
        sieve=args.sieve,
        batch_size=args.batch_size,
        tls=args.tls,
        check=args.check,
    )
    if args.party is not None:
        ports = [int(port) for port in args.ports.split(",")]
        certs = args.certs if args.tls else None
        return asyncio.run(_party(args.party, ports, settings, certs))
    problem = None
    if threshold < 1 or args.parties < 2 * threshold + 1:
        problem = f"TNO needs parties >= 2 * threshold + 1 with threshold >= 1, got {threshold}"
    elif args.bits < 64 or args.bits % 2:
        problem = f"--bits must be even and at least 64, got {args.bits}"
    elif args.timeout <= 0:
        problem = "--timeout must be positive"
    if problem is not None:
        detail = {"message": problem}
        result: dict[str, Any] = {"parties": args.parties, "bits": args.bits}
        result.update(seconds=None, status="error", detail=detail)
    else:
        result = run(settings, args.timeout)
    print(json.dumps(result), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

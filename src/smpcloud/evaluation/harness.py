"""What Figure 7 and Table 1 share: the encoding, the key shapes, the check, steps and servers.

* :data:`ENCODING`: every client's value is a real patient's body-mass index
  (:func:`smpcloud.datasets.patient_bmis`), fixed point with
  :data:`~smpcloud.datasets.FRAC_BITS` fractional bits in :data:`~smpcloud.datasets.BMI_RANGE`.
* The keys: a :data:`KEY_THRESHOLD`-of-:data:`KEY_HOLDERS` threshold Paillier key; Shamir mode
  on :data:`SHAMIR_SERVERS` servers with t = :data:`SHAMIR_THRESHOLD`.
* :func:`check_secure_sum`: every secure result is checked against the plaintext.
* :class:`Steps`: progress reporting; :func:`local_servers`: several aggregation servers side
  by side on 127.0.0.1.

Reveals nothing: no key, token or share is written anywhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from smpcloud.client import TaskEncoding
from smpcloud.crypto import threshold
from smpcloud.datasets import BMI_RANGE, FRAC_BITS
from smpcloud.errors import VerificationError
from smpcloud.service.local import local_server

#: The encoding of every client's value: a body-mass index, fixed point.
ENCODING: Final = TaskEncoding.fixed(FRAC_BITS, *BMI_RANGE)
#: The threshold key of Paillier mode: t of n holders decrypt.
KEY_HOLDERS: Final = 5
KEY_THRESHOLD: Final = 3
#: Shamir mode: n servers, any t rebuild the sum.
SHAMIR_SERVERS: Final = 3
SHAMIR_THRESHOLD: Final = 2

#: A threshold key and its shares, as :func:`smpcloud.crypto.threshold.deal` returns them.
Key = tuple[threshold.ThresholdPublicKey, Sequence[threshold.KeyShare]]
#: Called as progress(steps_done, steps_total, description_of_the_step_starting_now); the last
#: call is progress(total, total, "done").
ProgressCallback = Callable[[int, int, str], None]


def check_secure_sum(
    *,
    count: int,
    secure_sum: float,
    values: Sequence[float] | npt.NDArray[np.float64],
    encoding: TaskEncoding = ENCODING,
) -> None:
    """Check a released count and sum against the plaintext values they come from.

    The secure sum must equal, exactly, the sum of the values' fixed-point encodings (decoded),
    and lie within count · 2^-(frac_bits + 1) of the plain float sum.

    Args:
        count: the released count.
        secure_sum: the released sum.
        values: every client's plaintext value.
        encoding: the task's encoding.

    Raises:
        VerificationError: the count or the sum is wrong (the message gives both sums).
    """
    floats = [float(v) for v in values]
    exact = encoding.decode_sum(sum(encoding.encode(v) for v in floats))
    plain = float(np.sum(np.asarray(floats, dtype=np.float64)))
    if count != len(floats):
        raise VerificationError(f"the secure count is {count}; there are {len(floats)} clients")
    tolerance = len(floats) * 2.0 ** -(encoding.frac_bits + 1) + 1e-9 * abs(plain)
    if secure_sum != exact or abs(secure_sum - plain) > tolerance:
        raise VerificationError(
            f"the secure sum {secure_sum!r} is wrong: the clients' fixed-point values add up to "
            f"{exact!r} (plain float sum {plain!r})"
        )


class Steps:
    """Counts steps and reports them to the progress callback.

    Args:
        total: the number of steps.
        callback: called as callback(done, total, description) when a step starts, and as
            callback(total, total, "done") by :meth:`finish`; None: silent.
    """

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._callback = callback
        self._started = False

    def next(self, description: str) -> None:
        """Start the next step (the first call starts step 0)."""
        if self._started:
            self.done += 1
        self._started = True
        if self._callback is not None:
            self._callback(self.done, self.total, description)

    def finish(self) -> None:
        """Report every step done."""
        self.done = self.total
        if self._callback is not None:
            self._callback(self.total, self.total, "done")


@contextmanager
def local_servers(
    directory: Path, count: int, *, allow_insecure_keys: bool, first_db_url: str | None = None
) -> Iterator[list[tuple[str, str]]]:
    """Start ``count`` servers side by side; yield [(base_url, admin_token)] and stop them.

    Each server has its own SQLite file ``directory/server<j>.db`` (the first one
    ``first_db_url`` instead, if given: e.g. a PostgreSQL database) and a fresh admin token.

    Raises:
        TransportError: a server could not be started (the others are stopped).
    """
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    managers: list[AbstractContextManager[str]] = [
        local_server(
            directory / f"server{j}.db",
            token,
            allow_insecure_keys=allow_insecure_keys,
            db_url=first_db_url if j == 1 else None,
        )
        for j, token in enumerate(tokens, start=1)
    ]
    with ExitStack() as stack:
        if count:
            with ThreadPoolExecutor(count) as pool:
                futures = [pool.submit(m.__enter__) for m in managers]
            urls: list[str] = []
            failure: BaseException | None = None
            for manager, future in zip(managers, futures, strict=True):
                error = future.exception()
                if error is None:
                    urls.append(future.result())
                    stack.push(manager.__exit__)
                elif failure is None:
                    failure = error
            if failure is not None:
                raise failure
        else:
            urls = []
        yield list(zip(urls, tokens, strict=True))


__all__ = [
    "ENCODING",
    "KEY_HOLDERS",
    "KEY_THRESHOLD",
    "SHAMIR_SERVERS",
    "SHAMIR_THRESHOLD",
    "Key",
    "ProgressCallback",
    "Steps",
    "check_secure_sum",
    "local_servers",
]

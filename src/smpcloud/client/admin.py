"""The task administrator of the Paillier service: creates tasks, registers clients, closes.

Holds the server's admin token (never shown in messages or ``repr``); creates a task under a
threshold public key from the key ceremony, registers clients (their tokens are shown once),
closes the task and reads its status, info and released result, and lists the server's tasks.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from pydantic import ValidationError

from smpcloud.client._http import DEFAULT_TIMEOUT, task_path, validation_summary
from smpcloud.client._participant import Participant
from smpcloud.client.models import (
    ClientCredentials,
    TaskCreated,
    TaskInfo,
    TaskList,
    TaskResult,
    TaskStatus,
    read_result,
    read_status,
    read_task_info,
    read_task_list,
)
from smpcloud.crypto import threshold
from smpcloud.crypto.packing import Packing
from smpcloud.crypto.signatures import Roster
from smpcloud.errors import InvalidInputError
from smpcloud.protocol.schemas import (
    DEFAULT_MAX_CLIENTS,
    DEFAULT_TASK_LIST_LIMIT,
    DEFAULT_VALIDITY,
    INTEGER_ENCODING,
    MAX_REGISTRATIONS_PER_REQUEST,
    MAX_TASK_LIST_LIMIT,
    ClientsIn,
    ClientsOut,
    ResultOut,
    TaskCreatedOut,
    TaskEncoding,
    TaskIn,
    TaskInfoOut,
    TaskListOut,
    TaskStatusOut,
    Validity,
)


class Admin(Participant):
    """The task administrator: creates tasks, registers clients, closes, reads results.

    Args:
        base_url: the service's root URL, e.g. ``http://127.0.0.1:8000``.
        admin_token: the token the server was started with.
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport instead of the network (tests, in-process apps).
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, admin_token, timeout=timeout, transport=transport)

    def create_task(
        self,
        public_key: threshold.ThresholdPublicKey,
        *,
        name: str,
        length: int | None = None,
        encoding: TaskEncoding | None = None,
        min_clients: int,
        max_clients: int | None = None,
        deadline: datetime | None = None,
        packing: Packing | None = None,
        roster: Roster | None = None,
        validity: Validity = DEFAULT_VALIDITY,
    ) -> TaskCreated:
        """Create a task; return its id and one secret token per key holder.

        Args:
            public_key: the threshold public key from the key ceremony (``threshold.deal``);
                its holders and threshold t come with it.
            name: a label for people.
            length: values per client (1 = a scalar; more = element-wise vectors). Default:
                ``packing.length`` for a packed task, else 1.
            encoding: integers or fixed-point reals, with each value's declared range.
                Default: the one the packing implies (fixed point with its frac_bits and
                range; integers if frac_bits is 0 and the bounds are ints), else signed 64-bit
                integers. A packed task refuses any other.
            min_clients: fewer reports than this never release a result (at least 2).
            max_clients: most clients the task accepts. Default: ``packing.max_additions``
                for a packed task (it must not be more), else 10^6, for which the server checks
                that max_clients · max|value| · 2^frac_bits <= n/2 so that sums cannot wrap.
            deadline: an aware datetime at which the task closes by itself.
            packing: pack many values into each ciphertext with this layout (for example
                ``Packing.for_key(public_key.public_key, length=..., min_value=...,
                max_value=..., max_additions=..., frac_bits=...)``): 20x or more fewer
                ciphertexts to encrypt, upload, aggregate and decrypt for long vectors.
            roster: the key holders' roster (``holders.json`` from ``smpcloud keygen``, read
                with :func:`smpcloud.keyfiles.load_roster`), of the key's t and n. Without it
                the key holders cannot certify the task, and clients that pin the holders
                (every client by default) refuse to report to it.
            validity: ``"range"`` (the protocol default): every report carries a validity proof that
                each value lies in the declared range (the SDK makes it; the server verifies it
                before acknowledging the report and refuses a report whose proof fails), so no
                client can shift the sum beyond its own range or block a packed task.
                ``"none"``: reports are trusted (faster; one forged report can shift the sum).

        Raises:
            InvalidInputError: bad parameters (checked locally, then by the server).
            PermissionDeniedError: wrong admin token.
        """
        if not isinstance(public_key, threshold.ThresholdPublicKey):
            raise InvalidInputError("public_key must be a threshold.ThresholdPublicKey")
        if packing is not None and not isinstance(packing, Packing):
            raise InvalidInputError("packing must be a smpcloud.crypto.packing.Packing")
        if roster is not None and not isinstance(roster, Roster):
            raise InvalidInputError("roster must be a smpcloud.crypto.signatures.Roster")
        if length is None:
            length = packing.length if packing is not None else 1
        if max_clients is None:
            max_clients = packing.max_additions if packing is not None else DEFAULT_MAX_CLIENTS
        fields: dict[str, object] = {}
        if encoding is not None:
            fields["encoding"] = encoding
        elif packing is None:
            fields["encoding"] = INTEGER_ENCODING
        if packing is not None:
            fields["packing"] = packing.to_json()
        if roster is not None:
            fields["roster"] = roster.to_json()
        try:
            body = TaskIn(
                name=name,
                public_key=threshold.public_key_to_json(public_key),
                length=length,
                min_clients=min_clients,
                max_clients=max_clients,
                deadline=deadline,
                validity=validity,
                **fields,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise InvalidInputError(f"invalid task: {validation_summary(exc)}") from None
        payload = body.model_dump(mode="json")
        if roster is None:
            del payload["roster"]  # servers without certificates refuse unknown fields
        if packing is None:
            del payload["packing"]  # servers without packing refuse unknown fields
        elif encoding is None:
            del payload["encoding"]  # the server implies it from the layout
        out = self._conn.request("POST", "/v1/tasks", TaskCreatedOut, json=payload, expected=201)
        return TaskCreated(task_id=out.task_id, holder_tokens=list(out.holder_tokens))

    def register_clients(self, task_id: str, count: int) -> list[ClientCredentials]:
        """Register ``count`` clients; return their ids and tokens (shown only now).

        Large counts are sent in batches of 10 000.

        Raises:
            TaskStateError: the task is closed, or would exceed its max_clients.
        """
        if type(count) is not int or count < 1:
            raise InvalidInputError("count must be a positive integer")
        credentials: list[ClientCredentials] = []
        remaining = count
        while remaining:
            batch = min(remaining, MAX_REGISTRATIONS_PER_REQUEST)
            out = self._conn.request(
                "POST",
                task_path(task_id, "clients"),
                ClientsOut,
                json=ClientsIn(count=batch).model_dump(),
                expected=201,
            )
            credentials.extend(ClientCredentials(c.client_id, c.token) for c in out.clients)
            remaining -= batch
        return credentials

    def close(self, task_id: str) -> TaskStatus:
        """Close the task now (idempotent): publish the aggregate, or mark it insufficient."""
        return read_status(self._conn.request("POST", task_path(task_id, "close"), TaskStatusOut))

    def list_tasks(self, *, limit: int = DEFAULT_TASK_LIST_LIMIT) -> TaskList:
        """Return the server's tasks, newest first: state and report counts of each.

        Args:
            limit: the most tasks to return, 1..1000 (default 100); ``total`` in the answer
                says how many there are in all.

        Returns:
            The page of tasks and the total.

        Raises:
            InvalidInputError: limit outside 1..1000.
            PermissionDeniedError: wrong admin token.
        """
        if type(limit) is not int or not 1 <= limit <= MAX_TASK_LIST_LIMIT:
            raise InvalidInputError(f"limit must be an integer in 1..{MAX_TASK_LIST_LIMIT}")
        out = self._conn.request("GET", f"/v1/tasks?limit={limit}", TaskListOut)
        return read_task_list(out)

    def status(self, task_id: str) -> TaskStatus:
        """Return the task's state and counters."""
        return read_status(self._conn.request("GET", task_path(task_id, "status"), TaskStatusOut))

    def info(self, task_id: str, *, allow_insecure_keys: bool = False) -> TaskInfo:
        """Return the task's key, encoding and limits."""
        out = self._conn.request("GET", task_path(task_id), TaskInfoOut)
        return read_task_info(out, insecure=allow_insecure_keys)

    def result(self, task_id: str) -> TaskResult:
        """Return the released sum, count and average per element.

        Raises:
            TaskStateError: the task is still open.
            InsufficientReportsError: it closed with fewer than min_clients reports.
            ThresholdNotMetError: fewer than t partial decryptions so far.
        """
        return read_result(self._conn.request("GET", task_path(task_id, "result"), ResultOut))


__all__ = ["Admin"]

"""The service's aggregation schemes: one interface, and the registry of its implementations.

Every scheme implements :class:`~smpcloud.service.schemes.base.Scheme` and is registered here
under the name a task's ``scheme`` field gives (:class:`~smpcloud.protocol.schemas.TaskIn`):

* ``paillier`` (:mod:`smpcloud.service.schemes.paillier`): one server, clients encrypt under a
  threshold Paillier key, t of n key holders decrypt only the aggregate; packed tasks are its
  variant;
* ``shamir`` (:mod:`smpcloud.service.schemes.shamir`): n servers, each holding one Shamir share
  per client, each publishing its share of the sum over a participant set.

A third scheme is one new module with a ``Scheme`` subclass, its tables in
:mod:`smpcloud.service.db`, and one line in :data:`SCHEMES` (plus its name in the wire
contract's ``Scheme`` literal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from smpcloud.service.schemes.base import Scheme, SchemeContext
from smpcloud.service.schemes.paillier import PaillierScheme
from smpcloud.service.schemes.shamir import ShamirScheme

#: The registry: scheme name -> implementation (built with the service's SchemeContext).
SCHEMES: Final[Mapping[str, Callable[[SchemeContext], Scheme[Any]]]] = {
    PaillierScheme.name: PaillierScheme,
    ShamirScheme.name: ShamirScheme,
}

__all__ = ["SCHEMES", "Scheme", "SchemeContext"]

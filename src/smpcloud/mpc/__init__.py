"""Peer MPC: protocols written once against an abstract :class:`Transport`.

``transport`` (the interface), ``memory`` (all parties in one event loop, for tests), ``tcp``
(length-prefixed frames over mutually authenticated TLS 1.3), ``runtime`` (a party's view: share,
add, multiply with Beaver triples, open) and ``protocols`` (secure sum, statistics).
"""

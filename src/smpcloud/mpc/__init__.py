"""Peer MPC: protocols written once against an abstract :class:`Transport`.

``transport`` (the interface), ``memory`` (all parties in one event loop, for tests), ``tcp``
(length-prefixed frames over mutually authenticated TLS 1.3; its frames in ``frames``, its
connection setup in ``mesh_setup``), ``runtime`` (a party's view: share, add, multiply with
Beaver triples, open; built on ``shared``, ``rounds``, ``preprocessing`` and ``rns``) and
``protocols`` (secure sum, statistics).
"""

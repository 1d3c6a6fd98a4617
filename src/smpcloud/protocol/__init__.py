"""The wire contract between the aggregation service and its SDK.

Both :mod:`smpcloud.service` and :mod:`smpcloud.client` depend on this package and never on
each other (``tests/unit/test_layers.py`` enforces it):

* :mod:`smpcloud.protocol.schemas`: request and response bodies (pydantic) and the limits
  both sides check; it re-exports the task encodings of
  :mod:`smpcloud.protocol.task_encoding` (how values become plaintexts, and their range);
* :mod:`smpcloud.protocol.problems`: the exceptions the service reports, and the one table that
  ties each to its RFC 9457 problem ``type``, HTTP status and title;
* :mod:`smpcloud.protocol.sharing`: the wire form of Shamir shares and the Shamir task's
  parameters.

Nothing here opens a socket, reads a file or knows about FastAPI or httpx.
"""

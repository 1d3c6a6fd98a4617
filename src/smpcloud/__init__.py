"""smpcloud: secure multi-party computation toolkit and aggregation service.

Layers (imports point downwards only): ``cli`` -> ``apps`` -> ``service``/``client`` -> ``mpc`` ->
``crypto`` -> ``errors``. ``crypto`` holds pure math: no sockets, files, asyncio or global state.
"""

__version__ = "0.1.0"

"""The cloud aggregation service (FastAPI + SQLAlchemy): the paper's Figures 1 and 2.

Build the application with :func:`smpcloud.service.app.create_app`; run it with
``smpcloud serve`` or ``python -m smpcloud.service``. The wire contract it shares with the
client SDK lives in :mod:`smpcloud.protocol`; this package never imports :mod:`smpcloud.client`.
"""

"""The cloud aggregation service (FastAPI + SQLAlchemy): the paper's Figures 1 and 2.

Build the application with :func:`smpcloud.service.app.create_app`; run it with
``smpcloud serve`` or ``python -m smpcloud.service``. This package module imports nothing
heavy, so that :mod:`smpcloud.service.schemas` can be shared with the client SDK.
"""

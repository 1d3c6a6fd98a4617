"""``smpcloud health``: is the aggregation server up? Optionally wait until it is.

For scripts and the README: ``smpcloud serve ... &`` returns before the server listens, so the
next command would meet "connection refused"; ``smpcloud health --wait 30`` blocks until the
server answers ``/healthz`` (or the time is up), which also makes it a container health check.
"""

from __future__ import annotations

import time

import click

from smpcloud.cli._common import err_console


@click.command("health")
@click.option(
    "--server",
    envvar="SMPCLOUD_SERVER",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Aggregation server URL (or SMPCLOUD_SERVER).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 3600),
    default=0.0,
    show_default=True,
    help="Keep trying for up to this many seconds until the server answers.",
)
def health(server: str, wait_seconds: float) -> None:
    """Check that the aggregation server answers; exit 1 (one line) if it does not.

    \b
    Example (start a server in the background, then wait for it):
      smpcloud db upgrade --db sqlite:///aggregation.db
      smpcloud serve --db sqlite:///aggregation.db --port 8000 &
      smpcloud health --server http://127.0.0.1:8000 --wait 30
    """
    import httpx

    if not server.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--server")
    url = server.rstrip("/") + "/healthz"
    deadline = time.monotonic() + wait_seconds
    reason = ""
    while True:
        try:
            response = httpx.get(url, timeout=5.0)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if response.status_code == 200:
                err_console.print(f"{server} is up")
                return
            reason = f"HTTP {response.status_code}"
        if time.monotonic() >= deadline:
            waited = f" after {wait_seconds:g} s" if wait_seconds else ""
            raise click.ClickException(f"{server} does not answer{waited} ({reason})")
        time.sleep(0.2)


__all__ = ["health"]

"""The ``smpcloud`` command line: ``smpcloud --help`` lists every command.

Secrets (admin and client tokens, key shares) are read from files or environment variables,
never from command-line arguments (which other users of the machine can see in ``ps``).

One module per command group: :mod:`.demo`, :mod:`.keys` (keygen), :mod:`.certs` (certs ca,
request, sign, and the one-machine path), :mod:`.serve` (serve), :mod:`.db` (db upgrade,
current: the server's schema), :mod:`.task` (task create, list, status, close), :mod:`.service`
(submit, decrypt, result), :mod:`.receipts` (receipt verify), :mod:`.health`, :mod:`.peers`
(party, dealer), :mod:`.examples`, :mod:`.bench`; what they share is in :mod:`._common` (errors
and exit statuses), :mod:`.show` (human-readable output) and :mod:`.value_files` (a client's
values from a file). Each command imports the library lazily, inside its function, so that
``smpcloud --help`` stays fast.

Every error a user can cause ends in one line and a non-zero exit status, never a traceback
(:class:`smpcloud.cli._common.SmpcloudGroup`); the statuses are listed in ``smpcloud --help``.
"""

from __future__ import annotations

import click

from smpcloud import __version__
from smpcloud.cli._common import EXIT_CODES_HELP, SmpcloudGroup
from smpcloud.cli.bench import bench as bench_group
from smpcloud.cli.certs import certs
from smpcloud.cli.db import db
from smpcloud.cli.demo import demo as demo_command
from smpcloud.cli.examples import example
from smpcloud.cli.health import health
from smpcloud.cli.keys import keygen
from smpcloud.cli.peers import dealer, party, split_diabetes
from smpcloud.cli.receipts import receipt
from smpcloud.cli.serve import serve
from smpcloud.cli.service import certify, decrypt, result, submit
from smpcloud.cli.shamir import shamir
from smpcloud.cli.task import task


@click.group(
    cls=SmpcloudGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP + "\nSMPCLOUD_DEBUG=1 shows the traceback of an unexpected error.",
)
@click.version_option(__version__, prog_name="smpcloud")
def main() -> None:
    """smpcloud: compute sums, averages and statistics over data nobody may see.

    Clients encrypt their values under a threshold Paillier key and upload them to an
    aggregation server, which adds the ciphertexts without being able to read them; t of n
    key holders then decrypt only the aggregate.

    Or a few organisations run peer MPC side by side over mutually authenticated TLS,
    holding Shamir shares, and open only the statistics they agreed on.

    \b
    Quick start:   smpcloud demo                  (everything on 127.0.0.1, a few seconds)
    Aggregation:   smpcloud keygen -> smpcloud db upgrade -> smpcloud serve
                   -> smpcloud task create
                   -> smpcloud certify (t key holders)
                   -> smpcloud submit (each client) -> smpcloud task close
                   -> smpcloud decrypt (t key holders) -> smpcloud result
                   -> smpcloud receipt verify (each client)
                   (smpcloud task list and task status show where each task is)
    Shamir mode:   smpcloud shamir create|register|submit|close|result (n servers)
    Peer MPC:      smpcloud example split-diabetes (example inputs) -> smpcloud certs
                   (ca, request and sign per party; or one machine for a demo)
                   -> smpcloud dealer + smpcloud party (each party)
    """


for _command in (
    demo_command,
    keygen,
    certs,
    party,
    dealer,
    example,
    bench_group,
    db,
    serve,
    task,
    certify,
    submit,
    decrypt,
    result,
    receipt,
    health,
    shamir,
):
    main.add_command(_command)
example.add_command(split_diabetes)

__all__ = ["main"]

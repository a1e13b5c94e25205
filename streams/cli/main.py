"""The ``reachwatch`` command line: a thin click group over library functions.

One module per command group: ``offline`` (simulate, evaluate, train, replay), ``models``
(the registry), ``pseudonyms`` (keys and reveal), ``service`` (run, broker, demo); what
they share is in ``base``.
"""

from __future__ import annotations

import click

from reachwatch.streams.cli import exposure, models, offline, pseudonyms, service
from reachwatch.streams.cli.base import DEFAULT_REGISTRY, Commands

__all__ = ["DEFAULT_REGISTRY", "main"]


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reachwatch")
def main() -> None:
    """Detect unusual broad access to sensitive data in access logs."""


for _command in (
    offline.simulate, offline.evaluate, offline.train, offline.replay,
    models.models,
    pseudonyms.pseudonymize_key, pseudonyms.reveal,
    service.run, service.broker, service.demo,
    exposure.exposure_report,
):
    main.add_command(_command)

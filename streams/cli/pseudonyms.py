"""``reachwatch pseudonymize-key new | reveal``: pseudonym keys and audited reveals."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reachwatch.models.errors import ReachwatchError
from reachwatch.streams.cli.base import Commands, Failure, format_option


@click.group("pseudonymize-key", cls=Commands)
def pseudonymize_key() -> None:
    """Make the HMAC key that pseudonymises principals and resources."""


@pseudonymize_key.command("new")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def pseudonymize_key_new(file: Path) -> None:
    """Write a fresh random key to FILE (mode 0600; never overwrites); print its key id."""
    from reachwatch.streams.ingest.pseudonyms import new_key

    click.echo(new_key(file))


@click.command()
@click.argument("pseudonym")
@click.option(
    "--key-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--candidates",
    "candidates_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ids to try: one per line (a directory export), or a JSON/JSONL event log.",
)
@format_option()
@click.option(
    "--audit-log",
    default="var/reveal-audit.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
def reveal(
    pseudonym: str, key_file: Path, candidates_file: Path, fmt: str, audit_log: Path
) -> None:
    """Map a pseudonym back to an id among candidates; every attempt is audit-logged."""
    import getpass

    from reachwatch.streams.ingest.chain import build_chain
    from reachwatch.streams.ingest.pseudonyms import Pseudonymizer
    from reachwatch.streams.ingest.reveal import audit_reveal, candidate_ids
    from reachwatch.streams.ingest.reveal import reveal as find

    pseudonymizer = Pseudonymizer.from_key_file(key_file)
    # Candidates are raw ids: read through the adapter alone, never pseudonymised.
    candidates = candidate_ids(candidates_file, build_chain(fmt))
    try:
        identity, tried = find(pseudonym, pseudonymizer, candidates)
    except ReachwatchError as exc:
        raise Failure(str(exc), 2) from None
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        who = f"uid:{os.getuid()}"
    audit_reveal(
        audit_log,
        who=who,
        pseudonym=pseudonym,
        found=identity is not None,
        key_id=pseudonymizer.fingerprint,
        candidates=candidates_file,
    )
    click.echo(f"reveal of {pseudonym} by {who} logged to {audit_log}", err=True)
    if identity is None:
        raise Failure(f"{pseudonym} matches none of {tried} candidates in {candidates_file}")
    click.echo(identity)

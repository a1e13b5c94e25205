"""``reachwatch exposure-report``: who saw it, since when, through which change.

Two sources, one output:

- ``--broker B``: the latest record on the compacted ``access-exposures`` topic (what the
  workers published) for ``--resource R`` or ``--alert-id A``;
- ``--model M FILE...``: a replay of log files through the same logic, for an
  after-the-fact investigation (``streams.offline.exposures``).

It prints the plain summary and the reader list; ``--json`` prints the record as one JSON
object (``resource``, ``sensitivity``, ``opened``, ``closed``, ``cause``, ``readers`` with
``principal``, ``group``, ``first_read``, ``last_read``, ``reads``, ...), ``--csv`` the
readers as CSV.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from reachwatch.streams.cli.base import Failure, chain_options, format_option, parse_model_ref

READ_TIMEOUT_S = 20.0
IDLE_S = 1.0  # the topic is read until it has been quiet this long past its end offsets


@click.command("exposure-report")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--broker", default=None, help="Read the exposures topic of this broker.")
@click.option("--topic", default="access-exposures", show_default=True)
@click.option(
    "--model",
    "model_ref",
    default=None,
    help="Replay FILES with this model (registry dir, version dir or DIR:VERSION).",
)
@click.option("--resource", default=None, help="The exposed resource.")
@click.option("--alert-id", default=None, help="The broad_audience alert's id.")
@format_option()
@chain_options
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the readers as CSV.")
@click.option(
    "--timeout",
    default=READ_TIMEOUT_S,
    show_default=True,
    type=float,
    help="Seconds to read the topic for at most.",
)
def exposure_report(
    files: Sequence[Path],
    broker: str | None,
    topic: str,
    model_ref: str | None,
    resource: str | None,
    alert_id: str | None,
    fmt: str,
    enrich: Path | None,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
    as_json: bool,
    as_csv: bool,
    timeout: float,
) -> None:
    """Print the exposure record of a resource or alert: who read it, when, and the cause."""
    from reachwatch.models.errors import ReachwatchError

    if resource is None and alert_id is None:
        raise Failure("give --resource R or --alert-id A", 2)
    if (broker is None) == (model_ref is None):
        raise Failure("give either --broker B or --model M FILE...", 2)
    if model_ref is not None and not files:
        raise Failure("--model needs the log FILES to replay", 2)
    if as_json and as_csv:
        raise Failure("--json and --csv exclude each other", 2)
    try:
        if broker is not None:
            records = asyncio.run(read_topic(broker, topic, resource, alert_id, timeout))
        else:
            records = _replay(files, model_ref, fmt, enrich, pseudonym_key_file, pseudonymize)
    except ReachwatchError as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:
        raise Failure(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    from reachwatch.streams.offline.exposures import pick

    record = pick(records, resource, alert_id)
    if record is None:
        what = f"alert {alert_id}" if alert_id else f"resource {resource}"
        raise Failure(f"no exposure record for {what}")
    _print(record, as_json, as_csv)


def _print(record: dict[str, Any], as_json: bool, as_csv: bool) -> None:
    from reachwatch.models.exposure import readers_csv

    if as_json:
        click.echo(orjson.dumps(record).decode())
        return
    if as_csv:
        click.echo(readers_csv(record), nl=False)
        return
    click.echo(record["summary"])
    state = record.get("state")
    click.echo(
        f"alert {record.get('alert_id')} ({record.get('severity')}), {state}; "
        f"opened {record.get('opened')}, closed {record.get('closed') or '-'}"
    )
    click.echo("")
    click.echo(
        f"{'principal':<32} {'team':<16} {'first read':<24} {'last read':<24} {'reads':>5}  actions"
    )
    for reader in record.get("readers", ()):
        click.echo(
            f"{str(reader['principal'])[:32]:<32} {str(reader.get('group'))[:16]:<16} "
            f"{reader['first_read']:<24} {reader['last_read']:<24} "
            f"{reader['reads']:>5}  {' '.join(reader.get('actions', ()))}"
        )


def _replay(
    files: Sequence[Path],
    model_ref: str | None,
    fmt: str,
    enrich: Path | None,
    key_file: Path | None,
    mode: str | None,
) -> list[dict[str, Any]]:
    from reachwatch.models.pipeline import Pipeline
    from reachwatch.models.registry import Registry
    from reachwatch.streams.cli.base import DEFAULT_REGISTRY
    from reachwatch.streams.ingest.chain import build_chain
    from reachwatch.streams.offline.exposures import replay_exposures

    chain = build_chain(fmt, enrich=enrich, pseudonym_key_file=key_file, pseudonymize=mode)
    root, ref = parse_model_ref(model_ref)
    model = Registry(root or DEFAULT_REGISTRY).load(ref)
    chain.check_model(model.metadata)
    return replay_exposures(files, Pipeline(model), chain)


async def read_topic(
    broker: str, topic: str, resource: str | None, alert_id: str | None, timeout: float
) -> list[dict[str, Any]]:
    """Every record on the exposures topic matching the resource or alert (a full read).

    Read to the end offsets and then until the topic has been quiet for ``IDLE_S``: the
    embedded broker can report an end offset short of the last batch.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from reachwatch.models.errors import ReachwatchError
    from reachwatch.streams.service.logend import log_ends

    # aiokafka logs every failed connection attempt; the command reports one line itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    servers = ",".join(part.split("://", 1)[-1] for part in broker.split(";") if part)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        await consumer.stop()
        raise ReachwatchError(f"cannot reach broker {broker}: {type(exc).__name__}") from None
    found: list[dict[str, Any]] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ReachwatchError(f"topic {topic} does not exist on {broker}")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning()
        # Checked: the embedded broker lists less than the log holds (streams/service/logend.py).
        ends = await log_ends(consumer._client, await consumer.end_offsets(assigned))
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250)
            got = False
            for records in batch.values():
                for message in records:
                    got = True
                    try:
                        record = orjson.loads(message.value or b"null")
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(record, dict) and _matches(record, resource, alert_id):
                        found.append(record)
            positions = [await consumer.position(tp) for tp in assigned]
            at_end = all(at >= ends[tp] for at, tp in zip(positions, assigned, strict=True))
            if got or not at_end:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= IDLE_S:
                break
    finally:
        await consumer.stop()
    return found


def _matches(record: dict[str, Any], resource: str | None, alert_id: str | None) -> bool:
    if alert_id is not None and record.get("alert_id") != alert_id:
        return False
    return resource is None or record.get("resource") == resource

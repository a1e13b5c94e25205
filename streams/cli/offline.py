"""``reachwatch simulate | evaluate | train | replay``: the commands that work on files."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import click
import orjson

from reachwatch.streams.cli.base import (
    DEFAULT_REGISTRY,
    Failure,
    chain_options,
    format_option,
    inputs,
    jobs_option,
    limit_options,
    limits,
    parse_model_ref,
)


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.05, 20.0))
@click.option("--history-days", type=click.IntRange(3, 120), help="Default: drawn (14-21).")
@click.option("--test-days", type=click.IntRange(1, 30), help="Default: drawn (2-3).")
@click.option("--reference", is_flag=True, help="The fixed reference company, not the family.")
def simulate(out_dir: Path, seed: int, scale: float, history_days: int | None,
             test_days: int | None, reference: bool) -> None:
    """Write company SEED of the family: access history, a test period with incidents, labels."""
    if reference:
        from reachwatch.models.simulation.reference import simulate as fixed

        summary = fixed(out_dir, seed=seed, scale=scale, history_days=history_days or 21,
                        test_days=test_days or 3)
    else:
        from reachwatch.models.simulation import simulate as run

        summary = run(out_dir, seed=seed, scale=scale, history_days=history_days,
                      test_days=test_days)
    click.echo(orjson.dumps(summary.to_json()).decode())


@click.command()
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
def evaluate(labels: Path, alerts: Path, as_json: bool) -> None:
    """Judge alerts against labelled incidents: caught, time to detect, false positives."""
    from reachwatch.models.evaluation import evaluate as judge

    try:
        label_doc = orjson.loads(labels.read_bytes())
        rows = [orjson.loads(line) for line in alerts.read_bytes().splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise Failure(f"not JSON: {exc}", 2) from None
    result = judge(label_doc, rows)
    click.echo(orjson.dumps(result.to_json()).decode() if as_json else result.render())


def _chain(fmt: str, enrich: Path | None, pseudonym_key_file: Path | None,
           pseudonymize: str | None, field_limits: Any) -> Any:
    from reachwatch.streams.ingest.chain import build_chain

    if pseudonymize is not None and pseudonym_key_file is None:
        raise Failure("--pseudonymize needs --pseudonym-key-file", 2)
    return build_chain(fmt, enrich=enrich, pseudonym_key_file=pseudonym_key_file,
                       pseudonymize=pseudonymize, limits=field_limits)


def _open_rejects(path: Path | None) -> IO[bytes] | None:
    return path.open("wb") if path is not None else None


@click.command()
@inputs
@format_option()
@chain_options
@click.option(
    "--out",
    "registry",
    default=str(DEFAULT_REGISTRY),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Registry directory.",
)
@click.option("--promote", is_flag=True, help="Promote the new version right away.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@limit_options
@jobs_option
def train(
    files: Sequence[Path],
    fmt: str,
    enrich: Path | None,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
    registry: Path,
    promote: bool,
    seed: int,
    rejects_out: Path | None,
    quiet: bool,
    max_id_length: int | None,
    max_field_length: int | None,
    max_nesting: int | None,
    jobs: int,
) -> None:
    """Build features from history, fit, calibrate, and store a new model version."""
    from tqdm import tqdm

    from reachwatch.models.card import write_card
    from reachwatch.models.registry import Registry
    from reachwatch.models.training import TrainingParams, fit
    from reachwatch.streams.offline.replay import Tally, collect_events

    chain = _chain(fmt, enrich, pseudonym_key_file, pseudonymize,
                   limits(max_id_length, max_field_length, max_nesting))
    tally = Tally()
    rejects = _open_rejects(rejects_out)
    try:
        events = [
            e for batch in collect_events(files, chain, tally, rejects, keep_grants=True)
            for e in batch
        ]
    finally:
        if rejects:
            rejects.close()
    events.sort(key=lambda e: e.ts)
    bar = tqdm(
        total=2 * len(events),
        unit="ev",
        disable=quiet or not sys.stderr.isatty(),
        desc="train",
        file=sys.stderr,
    )
    fitted = fit(events, params=TrainingParams(seed=seed), progress=bar.update, jobs=jobs)
    bar.close()
    fitted.metadata["inputs"] = {"files": [p.name for p in files], "format": fmt, **tally.to_json()}
    # The chain the model must be served through (key and mapping fingerprints, no secret).
    fitted.metadata.update(chain.describe())
    store = Registry(registry)
    version = store.write(fitted.detectors, fitted.profiles, fitted.metadata)
    write_card(store.root / version, fitted.metadata)
    if promote:
        store.promote(version)
    click.echo(version)


@click.command()
@inputs
@format_option()
@chain_options
@click.option(
    "--model",
    "model_ref",
    default=None,
    help="Registry dir (its promoted version), a version dir, or DIR:VERSION.",
)
@click.option("--alerts-out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--table", is_flag=True, help="Also print alerts as a table on stderr.")
@limit_options
@jobs_option
def replay(
    files: Sequence[Path],
    fmt: str,
    enrich: Path | None,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
    model_ref: str | None,
    alerts_out: Path,
    rejects_out: Path | None,
    table: bool,
    max_id_length: int | None,
    max_field_length: int | None,
    max_nesting: int | None,
    jobs: int,
) -> None:
    """Run files through the streaming logic in event-time order; write alert JSON lines."""
    from reachwatch.models.pipeline import Pipeline
    from reachwatch.models.registry import Registry
    from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

    chain = _chain(fmt, enrich, pseudonym_key_file, pseudonymize,
                   limits(max_id_length, max_field_length, max_nesting))
    root, ref = parse_model_ref(model_ref)
    model = Registry(root or DEFAULT_REGISTRY).load(ref)
    chain.check_model(model.metadata)
    tally = Tally()
    shown: list[dict[str, Any]] = []
    rejects = _open_rejects(rejects_out)
    try:
        with alerts_out.open("wb") as out:

            def emit(alert: Any) -> None:
                row = alert.to_json()
                out.write(orjson.dumps(row) + b"\n")
                if table:
                    shown.append(row)

            run_replay(collect_events(files, chain, tally, rejects, keep_grants=True),
                       Pipeline(model), tally, emit, jobs=jobs)
    finally:
        if rejects:
            rejects.close()
    if table:
        from reachwatch.streams.cli.console import alerts_table

        alerts_table(shown, file=sys.stderr)
    click.echo(orjson.dumps(tally.to_json()).decode())

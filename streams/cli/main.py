"""The ``reachwatch`` command line: a thin click group over library functions.

Every command fails with one line on stderr and a non-zero exit on bad input; none prints
a traceback for an expected problem.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from reachwatch.models.errors import ReachwatchError
from reachwatch.streams.cli import service

DEFAULT_REGISTRY = Path("var/models")


class Failure(click.ClickException):
    """A one-line error with exit status 2 (bad input), or 1 for other failures."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message.splitlines()[0] if message else "failed")
        self.exit_code = exit_code


def _fail_on_errors(func: Any) -> Any:
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReachwatchError as exc:
            raise Failure(str(exc)) from None
        except OSError as exc:
            raise Failure(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reachwatch")
def main() -> None:
    """Detect unusual broad access to sensitive data in access logs."""


# -- shared options ---------------------------------------------------------------------
def _format_option(func: Any) -> Any:
    from reachwatch.streams.formats.adapters import ADAPTER_NAMES

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(ADAPTER_NAMES),
        default="native",
        show_default=True,
        help="Input record format.",
    )(func)


def _enrich_option(func: Any) -> Any:
    return click.option(
        "--enrich",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Mapping file: resource/prefix -> group, sensitivity; principal -> group.",
    )(func)


def _pseudonym_options(func: Any) -> Any:
    func = click.option(
        "--pseudonymize",
        type=click.Choice(("principals", "resources")),
        default=None,
        help="What to replace by keyed pseudonyms: principals, or principals and resources "
        "(default with a key: principals).",
    )(func)
    return click.option(
        "--pseudonym-key-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Pseudonymise identities with this HMAC key (keep it out of the repository).",
    )(func)


def _limit_options(func: Any) -> Any:
    for name, field, default in (
        ("--max-nesting", "JSON nesting depth", "64"),
        ("--max-field-length", "other text fields (groups, action, source)", "256"),
        ("--max-id-length", "principal and resource ids", "1024"),
    ):
        func = click.option(
            name,
            type=click.IntRange(1),
            default=None,
            help=f"Reject records whose {field} exceed this (default {default}).",
        )(func)
    return func


def _limits(max_id_length: int | None, max_field_length: int | None,
            max_nesting: int | None) -> Any:
    from reachwatch.models.records import Limits

    given = {"max_id_length": max_id_length, "max_field_length": max_field_length,
             "max_nesting": max_nesting}
    return Limits(**{k: v for k, v in given.items() if v is not None})


def _jobs_option(func: Any) -> Any:
    from reachwatch.models.forked import default_jobs

    return click.option(
        "--jobs",
        type=click.IntRange(1, 2),
        default=default_jobs(),
        show_default=True,
        help="Processes: 2 runs the principal and the resource side side by side "
        "(same output, needs fork).",
    )(func)


def _load_pseudonymizer(key_file: Path | None, mode: str | None) -> Any:
    if key_file is None:
        if mode is not None:
            raise Failure("--pseudonymize needs --pseudonym-key-file", 2)
        return None
    from reachwatch.streams.ingest.pseudonyms import Pseudonymizer

    return Pseudonymizer.from_key_file(key_file, resources=mode == "resources")


def _reader(fmt: str, enrich: Path | None, pseudonymizer: Any) -> tuple[Any, Any]:
    """(adapter, enrichment) to read with; pseudonyms replace ids after enrichment."""
    from reachwatch.streams.formats.adapters import get_adapter

    adapter, enrichment = get_adapter(fmt), _load_enrichment(enrich)
    if pseudonymizer is None:
        return adapter, enrichment
    return pseudonymizer.wrap(adapter, enrichment), None


def _inputs(func: Any) -> Any:
    return click.argument(
        "files",
        nargs=-1,
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
    )(func)


def _load_enrichment(path: Path | None) -> Any:
    if path is None:
        return None
    from reachwatch.streams.ingest.enrichment import Enrichment

    return Enrichment.from_file(path)


def resolve_model_ref(ref: str | None) -> tuple[Path, str]:
    """REGISTRY_DIR, a version folder, REGISTRY_DIR:VERSION, or a version in ./var/models."""
    if not ref:
        return DEFAULT_REGISTRY, "current"
    path = Path(ref)
    if path.is_dir():
        if (path / "metadata.json").exists():
            return path.parent, path.name
        return path, "current"
    if ":" in ref:
        root, _, version = ref.rpartition(":")
        return Path(root), version
    if "/" in ref or ref.startswith("."):
        raise Failure(f"model registry or version folder {ref} does not exist", 2)
    return DEFAULT_REGISTRY, ref


# -- simulate / evaluate ----------------------------------------------------------------
@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.05, 20.0))
@click.option("--history-days", default=21, show_default=True, type=click.IntRange(3, 120))
@click.option("--test-days", default=3, show_default=True, type=click.IntRange(1, 30))
@_fail_on_errors
def simulate(out_dir: Path, seed: int, scale: float, history_days: int, test_days: int) -> None:
    """Write a synthetic company's access history, a test period with incidents, labels."""
    from reachwatch.models.simulation import simulate as run

    summary = run(out_dir, seed=seed, scale=scale, history_days=history_days, test_days=test_days)
    click.echo(orjson.dumps(getattr(summary, "to_json", lambda: summary.__dict__)()).decode())


@main.command()
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@_fail_on_errors
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


# -- train / replay ---------------------------------------------------------------------
@main.command()
@_inputs
@_format_option
@_enrich_option
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
@_pseudonym_options
@_limit_options
@_jobs_option
@_fail_on_errors
def train(
    files: Sequence[Path],
    fmt: str,
    enrich: Path | None,
    registry: Path,
    promote: bool,
    seed: int,
    rejects_out: Path | None,
    quiet: bool,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
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

    pseudonymizer = _load_pseudonymizer(pseudonym_key_file, pseudonymize)
    adapter, enrichment = _reader(fmt, enrich, pseudonymizer)
    limits = _limits(max_id_length, max_field_length, max_nesting)
    tally = Tally()
    rejects = rejects_out.open("wb") if rejects_out else None
    try:
        events = [
            e
            for batch in collect_events(files, adapter, enrichment, tally, rejects, limits=limits)
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
    if pseudonymizer is not None:
        fitted.metadata["pseudonymization"] = pseudonymizer.describe()
    store = Registry(registry)
    version = store.write(fitted.detectors, fitted.profiles, fitted.metadata)
    write_card(store.root / version, fitted.metadata)
    if promote:
        store.promote(version)
    click.echo(version)


@main.command()
@_inputs
@_format_option
@_enrich_option
@click.option(
    "--model",
    "model_ref",
    default=None,
    help="Registry dir (its promoted version), a version dir, or DIR:VERSION.",
)
@click.option("--alerts-out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rejects-out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--table", is_flag=True, help="Also print alerts as a table on stderr.")
@_pseudonym_options
@_limit_options
@_jobs_option
@_fail_on_errors
def replay(
    files: Sequence[Path],
    fmt: str,
    enrich: Path | None,
    model_ref: str | None,
    alerts_out: Path,
    rejects_out: Path | None,
    table: bool,
    pseudonym_key_file: Path | None,
    pseudonymize: str | None,
    max_id_length: int | None,
    max_field_length: int | None,
    max_nesting: int | None,
    jobs: int,
) -> None:
    """Run files through the streaming logic in event-time order; write alert JSON lines."""
    from reachwatch.models.pipeline import Pipeline
    from reachwatch.models.registry import Registry
    from reachwatch.streams.ingest.pseudonyms import check_model
    from reachwatch.streams.offline.replay import Tally, collect_events, run_replay

    pseudonymizer = _load_pseudonymizer(pseudonym_key_file, pseudonymize)
    root, ref = resolve_model_ref(model_ref)
    model = Registry(root).load(ref)
    check_model(model.metadata, pseudonymizer)
    adapter, enrichment = _reader(fmt, enrich, pseudonymizer)
    tally = Tally()
    shown: list[dict[str, Any]] = []
    rejects = rejects_out.open("wb") if rejects_out else None
    try:
        with alerts_out.open("wb") as out:

            def emit(alert: Any) -> None:
                row = alert.to_json()
                out.write(orjson.dumps(row) + b"\n")
                if table:
                    shown.append(row)

            run_replay(
                collect_events(
                    files, adapter, enrichment, tally, rejects,
                    limits=_limits(max_id_length, max_field_length, max_nesting),
                ),
                Pipeline(model),
                tally,
                emit,
                jobs=jobs,
            )
    finally:
        if rejects:
            rejects.close()
    if table:
        from reachwatch.streams.cli.console import alerts_table

        alerts_table(shown, file=sys.stderr)
    click.echo(orjson.dumps(tally.to_json()).decode())


# -- models ------------------------------------------------------------------------------
@main.group()
def models() -> None:
    """List, inspect, promote and roll back model versions."""


_registry_option = click.option(
    "--registry",
    default=str(DEFAULT_REGISTRY),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)


@models.command("list")
@_registry_option
@_fail_on_errors
def models_list(registry: Path) -> None:
    """Versions, newest last; * marks the promoted one."""
    from reachwatch.models.registry import Registry

    store = Registry(registry)
    current = store.current_version()
    versions = store.versions()
    if not versions:
        raise Failure(f"no model versions in {registry}")
    for version in versions:
        meta = store.metadata(version)
        counts = meta.get("counts", {})
        mark = "*" if version == current else " "
        click.echo(
            f"{mark} {version}  events={counts.get('events')}  "
            f"principals={counts.get('principals')}  resources={counts.get('resources')}"
        )


@models.command("show")
@click.argument("version", default="current")
@_registry_option
@_fail_on_errors
def models_show(version: str, registry: Path) -> None:
    """A version's metadata (checksums verified)."""
    from reachwatch.models.registry import Registry

    meta = Registry(registry).metadata(version)
    meta.pop("profiles", None)
    meta.pop("feature_stats", None)
    click.echo(orjson.dumps(meta, option=orjson.OPT_INDENT_2).decode())


@models.command("promote")
@click.argument("version")
@_registry_option
@_fail_on_errors
def models_promote(version: str, registry: Path) -> None:
    """Make VERSION the one workers score with (running workers switch without restart)."""
    from reachwatch.models.registry import Registry

    store = Registry(registry)
    store.promote(version)
    click.echo(f"promoted {store.current_version()}")


@models.command("rollback")
@_registry_option
@_fail_on_errors
def models_rollback(registry: Path) -> None:
    """Re-promote the previously promoted version."""
    from reachwatch.models.registry import Registry

    click.echo(f"rolled back to {Registry(registry).rollback()}")


# -- pseudonyms ---------------------------------------------------------------------------
@main.group("pseudonymize-key")
def pseudonymize_key() -> None:
    """Make the HMAC key that pseudonymises principals and resources."""


@pseudonymize_key.command("new")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_fail_on_errors
def pseudonymize_key_new(file: Path) -> None:
    """Write a fresh random key to FILE (mode 0600; never overwrites); print its key id."""
    from reachwatch.streams.ingest.pseudonyms import new_key

    click.echo(new_key(file))


@main.command()
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
@_format_option
@click.option(
    "--audit-log",
    default="var/reveal-audit.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@_fail_on_errors
def reveal(
    pseudonym: str, key_file: Path, candidates_file: Path, fmt: str, audit_log: Path
) -> None:
    """Map a pseudonym back to an id among candidates; every attempt is audit-logged."""
    import getpass

    from reachwatch.streams.formats.adapters import get_adapter
    from reachwatch.streams.ingest.pseudonyms import Pseudonymizer, audit_reveal, candidate_ids
    from reachwatch.streams.ingest.pseudonyms import reveal as find

    pseudonymizer = Pseudonymizer.from_key_file(key_file)
    try:
        identity, tried = find(
            pseudonym, pseudonymizer, candidate_ids(candidates_file, get_adapter(fmt))
        )
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


for _command in (service.run, service.broker, service.demo):
    main.add_command(_command)

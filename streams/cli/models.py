"""``reachwatch models list | show | promote | rollback``: the model registry."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from reachwatch.streams.cli.base import Commands, Failure, registry_option


@click.group(cls=Commands)
def models() -> None:
    """List, inspect, promote and roll back model versions."""


@models.command("list")
@registry_option
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
@registry_option
def models_show(version: str, registry: Path) -> None:
    """A version's metadata (checksums verified)."""
    from reachwatch.models.registry import Registry

    meta = Registry(registry).metadata(version)
    meta.pop("profiles", None)
    meta.pop("feature_stats", None)
    click.echo(orjson.dumps(meta, option=orjson.OPT_INDENT_2).decode())


@models.command("promote")
@click.argument("version")
@registry_option
def models_promote(version: str, registry: Path) -> None:
    """Make VERSION the one workers score with (running workers switch without restart)."""
    from reachwatch.models.registry import Registry

    store = Registry(registry)
    store.promote(version)
    click.echo(f"promoted {store.current_version()}")


@models.command("rollback")
@registry_option
def models_rollback(registry: Path) -> None:
    """Re-promote the previously promoted version."""
    from reachwatch.models.registry import Registry

    click.echo(f"rolled back to {Registry(registry).rollback()}")

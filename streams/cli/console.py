"""Alerts as a readable terminal table (replay --table, the demo)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table

SEVERITY_STYLE = {
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


def alert_row(alert: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(time, kind, severity, entity, summary) of one alert JSON object."""
    ts = str(alert.get("ts", ""))[:19].replace("T", " ")
    return (
        ts,
        str(alert.get("kind")),
        str(alert.get("severity")),
        str(alert.get("entity")),
        str(alert.get("summary")),
    )


def alerts_table(alerts: Iterable[dict[str, Any]], file: IO[str] | None = None) -> Table:
    table = Table(title="reachwatch alerts", expand=True, show_lines=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("entity", overflow="fold", max_width=32)
    table.add_column("summary", overflow="fold")
    for alert in alerts:
        ts, kind, severity, entity, summary = alert_row(alert)
        table.add_row(
            ts, kind, f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]", entity, summary
        )
    if file is not None:
        Console(file=file, width=160).print(table)
    return table

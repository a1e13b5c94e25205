"""The model card: a markdown page and a score-distribution plot next to each version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def plot_scores(metadata: dict[str, Any], path: Path) -> None:
    kinds = list(metadata["calibration"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.2))
    for ax, kind in zip(axes, kinds, strict=True):
        hist = metadata["calibration"][kind]["score_histogram"]
        edges = hist["edges"]
        ax.bar(edges[:-1], hist["counts"], width=edges[1] - edges[0], align="edge", log=True)
        ax.axvline(
            metadata["thresholds"][kind]["score"],
            color="red",
            linestyle="--",
            label="score threshold",
        )
        ax.set_title(kind)
        ax.set_xlabel("anomaly score (higher = more anomalous)")
        ax.set_ylabel("training reads (log)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_card(folder: Path, metadata: dict[str, Any]) -> Path:
    """Write ``card.md`` and ``scores.png`` into a version folder (not checksummed: docs)."""
    plot_scores(metadata, folder / "scores.png")
    window = metadata["training_window"]
    counts = metadata["counts"]
    lines = [
        f"# reachwatch model {folder.name}",
        "",
        f"Trained {_when(metadata['created_ts'])} on {counts['events']:,} reads by "
        f"{counts['principals']:,} principals of {counts['resources']:,} resources "
        f"({counts['peer_groups']} peer groups), event time {_when(window['start'])} to "
        f"{_when(window['end'])}.",
        "",
        "Two IsolationForests (scikit-learn), one per alert kind. Scores are in (0, 1], "
        "higher = more anomalous. An alert needs the score threshold *and* the breadth "
        "threshold (log-ratio over both own and peer baselines).",
        "",
        "| kind | training rows | score threshold | breadth threshold | training alert rate |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, cal in metadata["calibration"].items():
        th = metadata["thresholds"][kind]
        lines.append(
            f"| {kind} | {cal['rows']:,} | {th['score']:.4f} | {th['breadth']:.3f} "
            f"| {cal['training_alert_rate']:.5%} |"
        )
    lines += [
        "",
        "![score distribution](scores.png)",
        "",
        "## Intended use and limits",
        "- Ranks reads by how unusually *broad* they are for the reader (own history, peers) "
        "and for the dataset (own audience, datasets of equal sensitivity).",
        "- Not a verdict: an alert is a lead for an analyst, with evidence and a sample.",
        "- Peer profiles reflect the training window; retrain after reorganisations.",
        "",
        f"Libraries: {metadata['libraries']}",
        "",
    ]
    path = folder / "card.md"
    path.write_text("\n".join(lines))
    return path

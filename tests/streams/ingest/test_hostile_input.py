"""Hostile input at library level: anything in, an event or a SchemaError out, never a crash.

Two halves: hypothesis throws arbitrary bytes and JSON at ``decode_json``, every adapter
and ``files.read_files``; the corpus in ``tests/fixtures/nasty/`` (written by its
``make_corpus.py``) pins the exact reason of each known nasty case, with good events
around every one of them still accepted and scored.

Look-alike principals (Cyrillic 'а' for Latin 'a', fullwidth 'ａ') stay distinct: access
control authorises the exact id, so two ids that render alike are two accounts, and folding
them would let a look-alike account hide inside the real one's baseline.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FIXTURES

from reachwatch.models.errors import SchemaError
from reachwatch.models.pipeline import Pipeline
from reachwatch.models.records import REASONS, AccessEvent, decode_json
from reachwatch.streams.cli.main import main
from reachwatch.streams.formats.adapters import ADAPTER_NAMES, NativeAdapter, get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.files import FILE_REASONS, read_files
from reachwatch.streams.ingest.pseudonyms import Pseudonymizer

NASTY = FIXTURES / "nasty"
ALL_REASONS = set(REASONS) | set(FILE_REASONS)


# -- property: any input ends as an event, a skip or a SchemaError ---------------------------
def _field_names() -> list[str]:
    """Every key of the adapters' fixture records: arbitrary values land where adapters look."""
    names: set[str] = {"ts", "principal", "resource", "sensitivity", "records", "bytes"}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            names.update(value)
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    for name in ("ocsf_events.json", "m365_audit.json"):
        walk(orjson.loads((FIXTURES / name).read_bytes()))
    for line in (FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl").read_bytes().splitlines():
        walk(orjson.loads(line))
    return sorted(names)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["2026-03-17T09:00:00Z", "1773738000", "restricted", "GetObject", ""])
)
_keys = st.sampled_from(_field_names()) | st.text(max_size=8)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=8),
    max_leaves=40,
)


def _encode(value: Any, ascii_only: bool) -> bytes:
    # allow_nan writes NaN/Infinity literals; surrogatepass lets lone surrogates through
    # as invalid UTF-8: both are hostile inputs the decoder must turn away.
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)
    return text.encode("utf-8", errors="surrogatepass")


def _through_every_adapter(value: Any) -> list[AccessEvent | SchemaError | None]:
    results: list[AccessEvent | SchemaError | None] = []
    for name in ADAPTER_NAMES:
        adapter = get_adapter(name)
        try:
            records = list(adapter.records(value))
        except SchemaError as exc:
            results.append(exc)
            continue
        for record in records:
            try:
                results.append(adapter.event(record))
            except SchemaError as exc:
                results.append(exc)
    return results


def _decode_and_adapt(raw: bytes) -> list[AccessEvent | SchemaError | None]:
    try:
        value = decode_json(raw)
    except SchemaError as exc:
        return [exc]
    return _through_every_adapter(value)


def _assert_only_events_and_schema_errors(results: list[Any]) -> None:
    for result in results:
        assert result is None or isinstance(result, (AccessEvent, SchemaError))
        if isinstance(result, SchemaError):
            assert result.code in ALL_REASONS, result


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_any_bytes_decode_to_events_or_schema_errors(raw: bytes) -> None:
    _assert_only_events_and_schema_errors(_decode_and_adapt(raw))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_value_becomes_events_or_schema_errors(value: Any, ascii_only: bool) -> None:
    _assert_only_events_and_schema_errors(_decode_and_adapt(_encode(value, ascii_only)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.binary(max_size=120) | json_values.map(lambda v: _encode(v, True)), max_size=8
    ),
    adapter=st.sampled_from(ADAPTER_NAMES),
    compress=st.booleans(),
    cut=st.floats(min_value=0.0, max_value=1.0),
    max_line_bytes=st.sampled_from([16, 100, 1 << 20]),
)
def test_any_file_reads_to_outcomes_never_an_exception(
    lines: list[bytes], adapter: str, compress: bool, cut: float, max_line_bytes: int
) -> None:
    content = b"\n".join(lines)
    if compress:
        content = gzip.compress(content, mtime=0)
        content = content[: max(2, int(len(content) * cut))]  # often truncated mid-stream
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(content)
        chain = Chain(get_adapter(adapter))
        outcomes = list(read_files([path], chain, max_line_bytes=max_line_bytes))
    for outcome in outcomes:
        assert outcome.event is None or isinstance(outcome.event, AccessEvent)
        assert outcome.error is None or outcome.error.code in ALL_REASONS


# -- the corpus: each nasty line's exact reason, good events around it accepted ---------------
OK = "ok"
EXPECTED: dict[str, list[str]] = {
    "invalid_utf8.jsonl": [OK, "not_utf8", "not_utf8", "not_utf8", OK],
    "not_json.jsonl": [OK, *["not_json"] * 5, OK],
    "nan_infinity.jsonl": [OK, *["not_json"] * 4, OK],
    # 10k levels: orjson refuses past 1024 (not_json); 100 levels parse but pass
    # records.MAX_NESTING (too_large).
    "deep_nesting.jsonl": [OK, "not_json", "not_json", "too_large", OK],
    # 1e400 and a 401-digit ts overflow a double (not_json); 2**200 parses and is absurd.
    "huge_numbers.jsonl": [
        OK,
        "not_json",
        "absurd_count",
        "absurd_count",
        "bad_timestamp",
        "not_json",
        OK,
    ],
    "counts.jsonl": [
        OK,
        "negative_count",
        "negative_count",
        "absurd_count",
        "wrong_type",
        "wrong_type",
        "wrong_type",
        OK,
    ],
    "timestamps.jsonl": [OK, *["bad_timestamp"] * 7, "empty_field", OK],
    "lookalikes.jsonl": [OK] * 6,
    "control_chars.jsonl": [OK, *["bad_value"] * 6, OK],
    "missing_null.jsonl": [
        OK,
        *["missing_field"] * 5,
        "empty_field",
        "empty_field",
        "missing_field",
        OK,
    ],
    "wrong_types.jsonl": [OK, *["wrong_type"] * 6, *["not_object"] * 4, OK],
    "bad_values.jsonl": [OK, "bad_value", "bad_value", "bad_value", OK],
    "oversized_fields.jsonl": [OK, "too_large", "too_large", OK],
    # A 1 MB principal passes no id limit; a 1 MB unknown field is ignored under the
    # default line limit (see the max_line_bytes test below).
    "huge_string.jsonl.gz": [OK, "too_large", OK, OK],
}


def _fates(path: Path, **kw: Any) -> list[str]:
    return [
        OK if o.event is not None else o.error.code if o.error is not None else "skipped"
        for o in read_files([path], Chain(NativeAdapter()), **kw)
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nasty_corpus_lines_get_their_exact_reason(name: str) -> None:
    assert _fates(NASTY / name) == EXPECTED[name]


def test_every_corpus_file_is_checked() -> None:
    on_disk = {p.name for p in NASTY.iterdir() if p.suffix != ".py" and p.name != "README.md"}
    assert on_disk == set(EXPECTED) | {"truncated.jsonl.gz", "corrupted.jsonl.gz"}


def test_line_limit_turns_huge_lines_into_too_large_with_the_size_in_the_detail() -> None:
    path = NASTY / "huge_string.jsonl.gz"
    assert _fates(path, max_line_bytes=64 * 1024) == [OK, "too_large", "too_large", OK]
    errors = [o.error for o in read_files([path], Chain(NativeAdapter()), max_line_bytes=65536)]
    assert errors[1] is not None
    assert errors[1].detail.startswith("line is 1000") and errors[1].detail.endswith(
        "bytes, limit 65536"
    )


def test_a_newline_free_file_is_read_past_not_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "endless.jsonl"
    good = orjson.dumps({"ts": 1_773_738_000, "principal": "a", "resource": "r"})
    with path.open("wb") as handle:
        handle.write(good + b"\n")
        for _ in range(8):  # 8 MiB without a newline
            handle.write(b"x" * (1 << 20))
        handle.write(b"\n" + good + b"\n")
    outcomes = list(read_files([path], Chain(NativeAdapter()), max_line_bytes=4096))
    assert [o.error.code if o.error else OK for o in outcomes] == [OK, "too_large", OK]
    assert outcomes[1].raw is not None and len(outcomes[1].raw) <= 300


def test_decode_json_applies_a_message_size_limit() -> None:
    with pytest.raises(SchemaError) as caught:
        decode_json(b'{"principal": "' + b"a" * 2000 + b'"}', max_bytes=1000)
    assert (caught.value.code, caught.value.detail) == (
        "too_large",
        "message is 2017 bytes, limit 1000",
    )


@pytest.mark.parametrize("name", ["truncated.jsonl.gz", "corrupted.jsonl.gz"])
def test_damaged_gzip_keeps_what_was_readable_then_one_corrupt_file(name: str) -> None:
    fates = _fates(NASTY / name)
    assert fates[-1] == "corrupt_file"
    assert len(fates) > 100 and set(fates[:-1]) == {OK}


def test_gzip_cut_inside_its_header_is_one_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(b"x" * 100)[:5])
    assert _fates(path) == ["corrupt_file"]


# -- look-alikes -------------------------------------------------------------------------------
LOOKALIKES = (
    "\u0430na",
    "ana",
    "\u04bbr-1",
    "\uff41na",
)  # Cyrillic а, Latin, Cyrillic һ, fullwidth ａ


def test_lookalike_principals_stay_distinct_and_get_distinct_pseudonyms() -> None:
    events = [o.event for o in read_files([NASTY / "lookalikes.jsonl"], Chain(NativeAdapter()))]
    principals = [e.principal for e in events if e is not None]
    assert set(LOOKALIKES) <= set(principals)
    names = Pseudonymizer(b"k" * 32)
    assert len({names.principal(p) for p in LOOKALIKES}) == len(LOOKALIKES)


# -- through the pipeline: the good events around the bad ones are scored ----------------------
def _corpus_files() -> list[Path]:
    return sorted(p for p in NASTY.iterdir() if p.name.endswith((".jsonl", ".gz")))


def test_good_events_of_the_corpus_are_all_scored(tiny_model) -> None:
    events = sorted(
        (o.event for o in read_files(_corpus_files(), Chain(NativeAdapter())) if o.event),
        key=lambda e: e.ts,
    )
    expected_ok = sum(f.count(OK) for f in EXPECTED.values())
    assert len(events) > expected_ok  # plus the readable part of the damaged gzip files
    pipeline = Pipeline(tiny_model)
    principals: dict[str, Any] = {}
    left = pipeline.observe_principals(events, principals)
    right = pipeline.observe_resources(events, {})
    assert (left.scored, left.late) == (len(events), 0)
    assert right.scored == len(events)
    assert set(LOOKALIKES) <= set(principals)


def test_replay_of_the_corpus_counts_every_reject_and_accepts_the_rest(
    tiny_registry, tmp_path: Path
) -> None:
    files = _corpus_files()
    rejects = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay",
            *map(str, files),
            "--model",
            str(tiny_registry.root),
            "--alerts-out",
            str(tmp_path / "alerts.jsonl"),
            "--rejects-out",
            str(rejects),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output.strip().splitlines()[-1])
    expected = Counter(reason for fates in EXPECTED.values() for reason in fates if reason != OK)
    expected["corrupt_file"] += 2
    assert summary["rejected_by_reason"] == dict(sorted(expected.items()))
    assert summary["accepted"] == summary["events"] - summary["rejected"]
    rows = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert Counter(r["reason"] for r in rows) == expected
    assert all(r["detail"] for r in rows)

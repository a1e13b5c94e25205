"""Files: JSONL, whole JSON documents, gzip, and one outcome per record, always."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from support import FIXTURES

from reachwatch.models.records import AccessEvent, Limits
from reachwatch.streams.formats.adapters import NativeAdapter, get_adapter
from reachwatch.streams.ingest.chain import Chain
from reachwatch.streams.ingest.enrichment import Enrichment, ResourceRule
from reachwatch.streams.ingest.files import Outcome, read_files


def native(n: int, resource: str = "hr.salaries") -> dict[str, Any]:
    return {"ts": 1_700_000_000 + n, "principal": f"p{n}", "resource": resource}


def jsonl(*objects: Any) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def outcomes(path: Path | list[Path], adapter: Any = None, enrichment: Enrichment | None = None,
             **kw: Any) -> list[Outcome]:
    paths = path if isinstance(path, list) else [path]
    return list(read_files(paths, Chain(adapter or NativeAdapter(), enrichment), **kw))


def test_jsonl_gives_one_outcome_per_line_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(native(1)) + b"\n   \n" + jsonl(native(2)))
    result = outcomes(path)
    assert [o.line for o in result] == [1, 4]
    assert [o.event.principal for o in result if o.event] == ["p1", "p2"]
    assert result[0].raw == orjson.dumps(native(1)).decode()
    assert result[0].path == path


def test_bad_lines_become_errors_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        jsonl(native(1))
        + b"{broken\n"
        + b'{"ts": 1700000000, "principal": "\xff", "resource": "r"}\n'
        + jsonl({"ts": 1_700_000_000, "principal": "p"})
        + jsonl(native(5))
    )
    result = outcomes(path)
    assert [(o.line, o.error.code if o.error else None) for o in result] == [
        (1, None),
        (2, "not_json"),
        (3, "not_utf8"),
        (4, "missing_field"),
        (5, None),
    ]
    assert result[2].raw is not None and "\ufffd" in result[2].raw  # kept, made printable


def test_crlf_line_endings_and_a_byte_order_mark_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(native(1)).replace(b"\n", b"\r\n") * 2)
    result = outcomes(path)
    assert [o.error for o in result] == [None, None]


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    named = tmp_path / "events.jsonl.gz"
    unnamed = tmp_path / "events.log"
    for path in (named, unnamed):
        path.write_bytes(gzip.compress(jsonl(native(1), native(2))))
    assert [o.event.principal for o in outcomes(named) if o.event] == ["p1", "p2"]
    assert [o.event.principal for o in outcomes(unnamed) if o.event] == ["p1", "p2"]


def test_whole_file_json_array_numbers_records_by_position(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([native(1), {"oops": True}, native(3)], indent=2))
    result = outcomes(path)
    assert [o.line for o in result] == [1, 2, 3]
    assert result[1].error is not None and result[1].error.code == "missing_field"
    assert result[1].raw == '{"oops":true}'


def test_broken_json_array_is_a_single_error(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text('[\n {"ts": 1700000000,\n')
    result = outcomes(path)
    assert len(result) == 1 and result[0].error is not None
    assert result[0].error.code == "not_json"


def test_pretty_printed_cloudtrail_file_is_split_into_records(tmp_path: Path) -> None:
    lines = (FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20200914T0100Z.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": records}, indent=2).encode()))
    result = outcomes(path, get_adapter("cloudtrail"))
    assert len(result) == len(records)
    assert [o.line for o in result] == list(range(1, len(records) + 1))
    names = [r["eventName"] for r in records]
    reads = {name for name, o in zip(names, result, strict=True) if o.event is not None}
    assert reads == {"ListBuckets", "ListObjects", "GetObject"}
    assert all(o.error is None for o in result)


def test_single_line_envelopes_share_their_line_number(tmp_path: Path) -> None:
    records = [
        json.loads(line)
        for line in (FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl").read_text().splitlines()
    ]
    path = tmp_path / "trail.jsonl"
    path.write_bytes(jsonl({"Records": records[:3]}, {"Records": records[3:]}))
    result = outcomes(path, get_adapter("cloudtrail"))
    assert [o.line for o in result] == [1, 1, 1, 2, 2, 2]
    assert json.loads(result[0].raw or "") == records[0]


def test_bad_envelope_is_an_error_outcome(tmp_path: Path) -> None:
    path = tmp_path / "trail.jsonl"
    path.write_bytes(jsonl({"Records": "nope"}))
    [result] = outcomes(path, get_adapter("cloudtrail"))
    assert result.error is not None and result.error.code == "adapter_error"


def test_skips_are_neither_events_nor_errors(tmp_path: Path) -> None:
    result = outcomes(
        FIXTURES / "cloudtrail_s3_exfiltration_excerpt.jsonl", get_adapter("cloudtrail")
    )
    skipped = [o for o in result if o.skipped]
    assert len(skipped) == 3  # DescribeInstances, AssumeRole, DescribeVolumes
    assert all(o.event is None and o.error is None for o in skipped)


def test_files_are_read_in_the_given_order(tmp_path: Path) -> None:
    first, second = tmp_path / "b.jsonl", tmp_path / "a.jsonl"
    first.write_bytes(jsonl(native(1)))
    second.write_bytes(jsonl(native(2)))
    result = outcomes([first, second])
    assert [(o.path, o.event.principal if o.event else None) for o in result] == [
        (first, "p1"),
        (second, "p2"),
    ]


def test_enrichment_is_applied_to_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(native(1, "s3://hr/a"), native(2, "s3://web/b")))
    enrichment = Enrichment([ResourceRule("s3://hr/*", sensitivity="restricted")])
    result = outcomes(path, enrichment=enrichment)
    assert [o.event.sensitivity for o in result if o.event] == ["restricted", "internal"]


class _BrokenAdapter:
    name = "broken"

    def records(self, document: Any) -> Iterable[Any]:
        return (document,)

    def event(self, record: Any, limits: Limits) -> AccessEvent | None:
        if record.get("boom"):
            raise KeyError("boom")
        return NativeAdapter().event(record, limits)


def test_an_adapter_bug_is_one_error_not_the_end_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(native(1), {"boom": True}, native(3)))
    result = outcomes(path, _BrokenAdapter())
    assert [o.error.code if o.error else "ok" for o in result] == ["ok", "adapter_error", "ok"]
    assert result[1].error is not None and "KeyError" in result[1].error.detail


def test_jsonl_is_streamed_not_loaded_whole(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    path.write_bytes(jsonl(native(1)))
    stream = read_files([path], Chain(NativeAdapter()))
    assert next(stream).line == 1
    # Lines written after reading began are still read: the file was not slurped.
    with path.open("ab") as handle:
        handle.write(jsonl(native(2)))
    assert [o.line for o in stream] == [2]

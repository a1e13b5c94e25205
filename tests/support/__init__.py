"""Helpers shared by the test suites, imported as ``support.*`` (tests/ is on the path)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
REPO = TESTS.parent

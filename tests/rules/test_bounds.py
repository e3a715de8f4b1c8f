"""Bounded rules (issue 16, item 6): a folder over RULES_MAX_BYTES or RULES_MAX_COUNT is
refused with a clear error before it is parsed in full, and the last good set stays."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from app.config import ROOT, Settings
from app.rules.bounds import Bounds
from app.rules.loader import load_rules
from app.rules.source import RulesSource

RULE = """  - id: r{n}
    when: {{event: order.created}}
    send: {{after: 1d}}
    template: thank-you
"""


def many_rules(count: int) -> str:
    return "rules:\n" + "".join(RULE.format(n=n) for n in range(count))


def test_a_folder_over_max_bytes_is_refused_without_parsing_and_the_last_set_stays(
    tmp_path: Path,
) -> None:
    (tmp_path / "thank-you.yaml").write_text((ROOT / "rules" / "thank-you.yaml").read_text())
    source = RulesSource(tmp_path, bounds=Bounds(max_bytes=64 * 1024, max_count=2_000))
    assert source.reload()
    good = source.current
    # 42,000 rules, ~3.5 MB: what once took 55 s and ~1 GB to load.
    (tmp_path / "huge.yaml").write_text(many_rules(42_000))
    started = time.perf_counter()
    assert not source.reload()
    assert time.perf_counter() - started < 1.0  # refused by size, before any parsing
    [error] = source.errors
    assert "over RULES_MAX_BYTES (65,536)" in error and str(tmp_path) in error
    assert source.current is good and source.loaded


def test_more_rules_than_max_count_are_refused_with_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(many_rules(6))
    (tmp_path / "b.yaml").write_text(many_rules(6).replace("id: r", "id: b"))
    rules = load_rules(tmp_path, bounds=Bounds(max_count=10))
    [error] = rules.errors
    assert error.startswith(f"{tmp_path / 'b.yaml'}:2:3: more than RULES_MAX_COUNT (10) rules")
    assert load_rules(tmp_path, bounds=Bounds(max_count=12)).errors == ()


def test_settings_name_the_bounds_and_the_defaults_hold_real_sets() -> None:
    settings = Settings(rules_max_bytes=4096, rules_max_count=3, _env_file=None)  # type: ignore[call-arg]
    assert settings.rules_bounds == Bounds(max_bytes=4096, max_count=3)
    # The shipped rules load well within the defaults, and within a few MB of memory.
    tracemalloc.start()
    try:
        shipped = load_rules(ROOT / "rules")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shipped.errors == () and shipped.rules
    assert peak < 8 * 1024 * 1024, peak

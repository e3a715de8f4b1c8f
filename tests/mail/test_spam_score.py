"""SpamAssassin's verdict on every shipped template as it is sent: below 0.5 points.

Each message (see `sent_samples`) goes through `spamassassin -L -t`: local tests only (no
DNS blocklists, Razor or Pyzor, which need the network), with the report of every rule
that fired. Debian's package brings the rules of its release; nothing runs sa-update.

The messages are not DKIM-signed. With -L SpamAssassin resolves nothing, so it cannot fetch
a public key and skips DKIM altogether ("dkim: signature verification disabled, DNS
resolving not available"): a signature would change no rule and no score here, and
claiming a DKIM pass would be pretending. Signing itself is tested in test_dkim.py.
"""

from __future__ import annotations

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest

from tests.mail.sent_samples import Sample, compose_sent, require_program, shipped_samples

MAX_SCORE = 0.5
_STATUS_SCORE = re.compile(r"score=(-?\d+(?:\.\d+)?)")
_STATUS_TESTS = re.compile(r"tests=(\S*)")
# One row of the report table: " 1.2 RULE_NAME   description"; descriptions may wrap.
_REPORT_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class FiredRule:
    name: str
    points: float | None  # None: named in X-Spam-Status but missing from the report
    description: str


@dataclass(frozen=True)
class SpamVerdict:
    score: float
    rules: tuple[FiredRule, ...]

    def describe(self) -> str:
        lines = [f"score {self.score:+.1f} (must be below {MAX_SCORE})"]
        for rule in self.rules:
            points = "   ?" if rule.points is None else f"{rule.points:+.1f}"
            lines.append(f"  {points} {rule.name:<24} {rule.description}")
        return "\n".join(lines)


def spamassassin_verdict(program: str, message: bytes, *, home: Path) -> SpamVerdict:
    """The score and the rules `spamassassin -L -t` reports for `message`."""
    result = subprocess.run(
        [program, "-L", "-t", "-x"],
        input=message,
        capture_output=True,
        check=False,
        timeout=300,
        # Its own home, so no user preferences or Bayes data take part; English reports.
        env={**os.environ, "HOME": str(home), "LANG": "C", "LC_ALL": "C"},
    )
    output = result.stdout
    status = message_from_bytes(output, policy=compat32)["X-Spam-Status"]
    if result.returncode != 0 or status is None:
        raise AssertionError(
            f"spamassassin exited {result.returncode} without a verdict:\n"
            f"{result.stderr.decode(errors='replace')}"
        )
    # Unfolded, and the list of tests wraps after its commas.
    status = re.sub(r",\s+", ",", " ".join(str(status).split()))
    score = _STATUS_SCORE.search(status)
    tests = _STATUS_TESTS.search(status)
    assert score is not None and tests is not None, status
    names = [name for name in tests.group(1).split(",") if name and name != "none"]
    report = _report_rows(output.decode("utf-8", errors="replace"))
    rules = tuple(
        FiredRule(name, *report[name]) if name in report else FiredRule(name, None, "")
        for name in names
    )
    return SpamVerdict(score=float(score.group(1)), rules=rules)


def _report_rows(output: str) -> dict[str, tuple[float, str]]:
    """RULE -> (points, description) from the "Content analysis details" table."""
    _, found, table = output.partition("Content analysis details:")
    assert found, "spamassassin -t wrote no report"
    rows: dict[str, tuple[float, str]] = {}
    last: str | None = None
    for line in table.splitlines()[3:]:
        match = _REPORT_ROW.match(line)
        if match:
            last = match.group(2)
            rows[last] = (float(match.group(1)), match.group(3).strip())
        elif line.startswith(" " * 10) and last is not None:
            points, description = rows[last]
            rows[last] = (points, f"{description} {line.strip()}")
        elif not line.strip() and rows:
            break
    return rows


SAMPLES = shipped_samples()


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SpamVerdict]:
    """Every sample's verdict; spamassassin takes about two seconds each, so in parallel."""
    program = require_program("spamassassin")
    home = tmp_path_factory.mktemp("spamassassin-home")
    now = datetime.now(UTC)
    messages = {sample.name: compose_sent(sample, now=now).eml for sample in SAMPLES}
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        futures = {
            name: pool.submit(spamassassin_verdict, program, message, home=home)
            for name, message in messages.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: sample.name)
def test_spamassassin_scores_below_half_a_point(
    sample: Sample, verdicts: dict[str, SpamVerdict]
) -> None:
    verdict = verdicts[sample.name]
    report = f"{sample.name} (rule {sample.rule.id}, {sample.rule.kind}): {verdict.describe()}"
    print(report)
    assert verdict.score < MAX_SCORE, report

"""The console's tests: a worker on the test's runtime (its mail goes to the SMTP sink)."""

from __future__ import annotations

from tests.outbox.conftest import dispatcher  # noqa: F401

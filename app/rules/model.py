"""The rule file format (see docs/rules.md). Unknown keys are errors: a typo must not pass."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.rules.durations import Duration, parse_duration

EventType = Literal["order.created", "order.fulfilled"]
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemFilter(_Strict):
    """An item matches when any listed value matches (globs for SKUs, prefixes for categories)."""

    sku: list[str] = Field(default_factory=list, description="SKU globs, e.g. DIAPER-*")
    category: list[str] = Field(
        default_factory=list, description="category prefixes, e.g. baby/diapers"
    )

    def matches(self, *, sku: str | None, category: str | None) -> bool:
        if not self.sku and not self.category:
            return True
        if sku and any(fnmatch.fnmatchcase(sku, pattern) for pattern in self.sku):
            return True
        if not category:
            return False
        return any(
            category == prefix or category.startswith(prefix.rstrip("/") + "/")
            for prefix in self.category
        )


class When(_Strict):
    event: EventType
    items: ItemFilter | None = None


class Send(_Strict):
    after: str = Field(default="0m", description="delay after the event, e.g. 0m, 3d, 2w")
    expires: str | None = Field(
        default=None, description="not sent when later than send time plus this, e.g. 5d"
    )

    @field_validator("after", "expires")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @property
    def delay(self) -> Duration:
        return parse_duration(self.after)

    @property
    def expiry(self) -> Duration | None:
        return parse_duration(self.expires) if self.expires else None


class Rule(_Strict):
    id: str
    name: str | None = None
    kind: Literal["marketing", "transactional"] = "marketing"
    when: When
    send: Send = Field(default_factory=Send)
    template: str
    priority: int = Field(default=50, ge=0, le=100)

    @field_validator("id", "template")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("use lower-case letters, digits, '-' and '_' (max 128)")
        return value

    @property
    def version(self) -> str:
        """A hash of the rule's own definition: editing another rule leaves it unchanged."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Defaults(_Strict):
    kind: Literal["marketing", "transactional"] | None = None


class RuleFile(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[Rule] = Field(default_factory=list)

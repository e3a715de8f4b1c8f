"""Which variant a customer gets, and whether they are in a rule's control group. Pure.

Both come from a hash of the rule id and the customer's stable key (shop and the shop's own
customer id), so a customer keeps their variant and group across orders, processes and
`aftersale simulate`. The two draws use different salts: being held out says nothing about
which variant someone would have had.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.rules.model import Rule


@dataclass(frozen=True)
class Assignment:
    template: str
    variant: str | None
    held_out: bool


def assign(rule: Rule, customer_key: str) -> Assignment:
    held_out = rule.holdout > 0 and _draw("holdout", rule.id, customer_key) * 100 < rule.holdout
    if rule.variants is None:
        assert rule.template is not None
        return Assignment(template=rule.template, variant=None, held_out=held_out)
    point = _draw("variant", rule.id, customer_key) * sum(v.weight for v in rule.variants)
    chosen = rule.variants[-1]
    for variant in rule.variants:
        if point < variant.weight:
            chosen = variant
            break
        point -= variant.weight
    return Assignment(template=chosen.template, variant=chosen.label, held_out=held_out)


def _draw(salt: str, rule_id: str, customer_key: str) -> float:
    """A uniform number in [0, 1), the same every time for the same inputs."""
    digest = hashlib.sha256(f"{salt}\0{rule_id}\0{customer_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64

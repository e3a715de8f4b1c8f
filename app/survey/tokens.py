"""Survey tokens: which message a `/s/{token}/{score}` link answers for, signed.

The format is the tracking token's (`app.tracking.tokens`) with its own use, so neither can
pass for the other, keyed with AFTERSALE_SURVEY_SECRETS (rotated the same way). The use
also says the survey's kind (NPS, CSAT, CES), so the scale a link answers on is signed too.
The masked id is the message's; the nonce only randomises the mask, so tokens show no
sequence, and is stored nowhere: the 128-bit MAC is what makes a token unguessable. The
score is not signed: every score of the scale is the recipient's to choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.survey.scales import SurveyKind
from app.tracking.tokens import TokenUse, make_token, new_nonce, read_token

# What `aftersale preview` and test sends link to: no message, so nothing is recorded.
SAMPLE_TOKEN = "sample"  # noqa: S105 (not a secret: a link that names no message)
SAMPLE_TOKENS: dict[str, SurveyKind] = {
    SAMPLE_TOKEN: SurveyKind.NPS,
    "sample-csat": SurveyKind.CSAT,
    "sample-ces": SurveyKind.CES,
}
_USES: dict[SurveyKind, TokenUse] = {
    SurveyKind.NPS: TokenUse.SURVEY,
    SurveyKind.CSAT: TokenUse.SURVEY_CSAT,
    SurveyKind.CES: TokenUse.SURVEY_CES,
}


@dataclass(frozen=True)
class SurveyClaims:
    message_id: int
    issued_at: datetime
    kind: SurveyKind = SurveyKind.NPS


def sample_token(kind: str) -> str:
    return next(token for token, its_kind in SAMPLE_TOKENS.items() if its_kind == kind)


def make_survey_token(
    *,
    message_id: int,
    issued_at: datetime,
    secrets: Sequence[str],
    kind: str = SurveyKind.NPS,
) -> str:
    """A token for the `kind` survey of `message_id`, signed with the first of `secrets`."""
    return make_token(
        use=_USES[SurveyKind(kind)],
        link_id=message_id,
        nonce=new_nonce(),
        issued_at=issued_at,
        secrets=secrets,
    )


def read_survey_token(
    token: str, *, secrets: Sequence[str], now: datetime, max_age: timedelta
) -> SurveyClaims | None:
    """The message and survey kind a token answers for; None when it is not ours or too old
    (say no more)."""
    for kind, use in _USES.items():
        claims = read_token(token, use=use, secrets=secrets, now=now, max_age=max_age)
        if claims is not None:
            return SurveyClaims(message_id=claims.link_id, issued_at=claims.issued_at, kind=kind)
    return None

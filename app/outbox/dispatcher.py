"""The dispatcher job: claim due messages, check them again, render, send, record.

APScheduler only calls `drain()` on an interval; the outbox table is the queue, so any
number of dispatchers in any number of processes can run against one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.item_links import catalog_for_items, links_for_shop
from app.catalog.links import ShopLinks
from app.catalog.recommender import Recommender, RecommendRequest, item_refs
from app.config import Settings
from app.coupons.service import take_coupon
from app.db import transaction
from app.feedback.headers import envelope_sender, feedback_headers
from app.lifecycle.checks import Purchase, SendFacts
from app.lifecycle.due import (
    CapFacts,
    Sent,
    Stop,
    Waiting,
    bought_after,
    cap_limits,
    decide_due,
)
from app.lifecycle.refunds import remaining_quantities
from app.lifecycle.steps import next_step, sequence_facts
from app.mail.breaker import Pause, SenderBreaker
from app.mail.compose import compose_message, message_bytes
from app.mail.context import build_context
from app.mail.dkim import dkim_sign
from app.mail.replies import Verdict
from app.mail.sender import (
    Delivered,
    MailSender,
    PermanentFailure,
    SmtpUtf8Unsupported,
    TemporaryFailure,
)
from app.mail.templates import RenderTimeout, TemplateError, TemplateRenderer
from app.mail.unsubscribe import marketing_unsubscribe_mailto, marketing_unsubscribe_url
from app.models import Message, MessageStatus, OrderItem, SuppressionReason
from app.ops.metrics import observe_send, observe_sender_pause
from app.outbox import repository
from app.outbox.backoff import retry_delay
from app.outbox.group_commit import GroupCommit
from app.outbox.planned import insert_planned
from app.outbox.repository import CapEntry, PlacedItem, PreviousStep, SendContext
from app.planner.limits import Defer, span_start
from app.planner.planner import first_step_key, review_item_position, step_dedupe_key
from app.reviews.links import (
    answered_review_context,
    distinct_items,
    message_review_context,
)
from app.rules.loader import RuleSet
from app.rules.model import REVIEW_ANSWERED, Limit, Rule
from app.runtime import Runtime
from app.suppressions import repository as suppressions
from app.survey.links import message_survey_context, survey_kind
from app.tracking.repository import MessageLinks, NewLink, add_message_links
from app.tracking.service import StoreLinks, track_message

log = logging.getLogger(__name__)

# A wait for a domain's sending rate up to this is waited in the batch; a longer one in the
# outbox, so that one busy domain does not hold mail to the others.
INLINE_PACE_SECONDS = 1.0


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def add(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        for outcome, number in other.outcomes.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + number


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Dispatcher:
    def __init__(
        self,
        *,
        runtime: Runtime,
        sender: MailSender,
        renderer: TemplateRenderer,
        worker_id: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.sender = sender
        self.renderer = renderer
        self.worker_id = worker_id or new_worker_id()
        settings = runtime.settings
        self._concurrency = concurrency or settings.dispatch_concurrency
        self._lock = asyncio.Lock()
        self._stopping = False
        name, address = settings.from_address
        self._from_name, self._from_address = name, address
        self._message_id_domain = settings.sender_domain
        # Every per-message write (links, outcome) goes through here and shares a commit
        # with the other sends in flight.
        self._writes = GroupCommit(runtime.session_factory)
        # The outcomes of the sends in flight, recorded together (one object, so that the
        # group commit sees one batched write).
        self._record_finishes = self._finish_batch
        # Domain rate slots this worker took for messages it put aside (`_domain_wait`), by
        # message id. In memory: the rate buckets are per process too.
        self._pace_slots: dict[int, datetime] = {}
        self.breaker = SenderBreaker(
            threshold=settings.sender_pause_after,
            first_wait=timedelta(seconds=settings.sender_pause_seconds),
            max_wait=timedelta(seconds=settings.sender_pause_max_seconds),
        )
        # Caches what it reads per shop for a few minutes: most batches query nothing more.
        self.recommender = Recommender.from_settings(settings)

    async def drain(self) -> DispatchReport:
        """Run batches until one comes back short: a backlog empties without waiting a tick."""
        total = DispatchReport()
        async with self._lock:
            while not self._stopping:
                probe = self.breaker.probing(self.runtime.clock.now())
                report = await self._run_batch()
                total.add(report)
                if self.breaker.pause is not None:
                    break  # paused, or the probe did not get through
                if report.claimed < self.runtime.settings.dispatch_batch_size and not probe:
                    break
        return total

    async def run_once(self) -> DispatchReport:
        async with self._lock:
            return await self._run_batch()

    async def stop(self) -> None:
        """Stop taking new work and wait for the batch in flight to be recorded."""
        self._stopping = True
        async with self._lock:
            pass

    async def _run_batch(self) -> DispatchReport:
        settings = self.runtime.settings
        now = self.runtime.clock.now()
        if not self.breaker.allows(now):
            return DispatchReport()  # paused: the messages wait in the outbox, unclaimed
        async with transaction(self.runtime.session_factory) as session:
            ids = await repository.claim_due_messages(
                session,
                worker_id=self.worker_id,
                now=now,
                lease=timedelta(seconds=settings.lease_seconds),
                # After a pause, one message alone finds out whether the server is back.
                limit=1 if self.breaker.probing(now) else settings.dispatch_batch_size,
            )
        report = DispatchReport(claimed=len(ids))
        # Slots of messages another worker sent, or that were cancelled, are not waited for.
        stale = now - timedelta(hours=1)
        self._pace_slots = {key: at for key, at in self._pace_slots.items() if at > stale}
        if not ids:
            return report
        rules = self.runtime.rules.current
        async with self.runtime.session_factory() as session:
            contexts = await repository.load_send_contexts(session, ids)
            # Product pages, images and reorder ids for every item of the batch at once.
            catalogs = await catalog_for_items(session, ((shop_of(c), c.items) for c in contexts))
            contexts = [replace(c, catalog=catalogs.get(shop_of(c), {})) for c in contexts]
            history = await repository.load_order_history(
                session,
                [context.customer.id for context in contexts if _needs_history(context, rules)],
            )
            capped = [
                (context.customer.id, limits)
                for context in contexts
                if (limits := _cap_limits(context, rules))
            ]
            usage = await repository.cap_usage(
                session,
                customer_ids={customer_id for customer_id, _ in capped},
                since=min((span_start(now, limits) for _, limits in capped), default=now),
                now=now,
            )
            # For the rules with `recommend` only, a few statements per batch at most.
            recommended = await self.recommender.pick(
                session, recommend_requests(contexts, rules), now=now
            )
            # What the later steps of sequences decide on about the step before: one query.
            previous = await repository.load_previous_steps(
                session, {key for context in contexts if (key := _previous_key(context))}
            )
            # The rules' `if: {orders}`: each customer's standing orders now, one query.
            orders = await repository.standing_order_counts(
                session,
                {context.customer.id for context in contexts if _counts_orders(context, rules)},
            )
        gate = asyncio.Semaphore(self._concurrency)

        async def process(context: SendContext) -> None:
            async with gate:
                try:
                    report.count(
                        await self._process(
                            context,
                            history.get(context.customer.id, []),
                            usage.get(context.customer.id, []),
                            recommended.get(context.message.id),
                            previous.get(_previous_key(context) or ""),
                            orders.get(context.customer.id, 0),
                        )
                    )
                except Exception:
                    # e.g. the database went away mid-batch: the row stays `sending`
                    # and is reclaimed when its lease expires; the rest of the batch goes on.
                    log.exception("message %s: dispatch error", context.message.id)
                    report.count("error")

        # A batch can outlast its lease (a slow server, rate limits): keep the lease alive
        # while this worker is working, so nobody else takes and sends the same message.
        heartbeat = asyncio.create_task(self._keep_leases(ids))
        try:
            await asyncio.gather(*(process(context) for context in contexts))
        finally:
            heartbeat.cancel()
        log.info("dispatched batch", extra={"claimed": report.claimed, **report.outcomes})
        return report

    async def _keep_leases(self, ids: Sequence[int]) -> None:
        lease = timedelta(seconds=self.runtime.settings.lease_seconds)
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                async with transaction(self.runtime.session_factory) as session:
                    await repository.renew_leases(
                        session,
                        ids=ids,
                        worker_id=self.worker_id,
                        until=self.runtime.clock.now() + lease,
                    )
            except Exception:
                # The database is away: the sends go on; a lease that lapses meanwhile lets
                # another worker retry, which is what a lease is for.
                log.exception("could not renew leases")

    async def _process(
        self,
        context: SendContext,
        history: Sequence[PlacedItem],
        usage: Sequence[CapEntry],
        recommendations: Sequence[Mapping[str, Any]] | None = None,
        previous: PreviousStep | None = None,
        orders: int = 0,
    ) -> str:
        message, customer = context.message, context.customer
        now = self.runtime.clock.now()
        if self._stopping:
            await self._writes.run(
                lambda session: repository.release_message(
                    session, message_id=message.id, worker_id=self.worker_id, now=now
                )
            )
            return "released"
        source = self.runtime.rules
        rules = source.current
        rule = rules.by_id(message.rule_id)
        matched = matched_items(context, rule)
        decision = decide_due(
            self._send_facts(
                context,
                history,
                matched=matched,
                rule=rule,
                previous=previous,
                orders=orders,
                # Only a rule set that loaded can say a rule is gone; never cancel on a bad load.
                rule_missing=source.loaded and rule is None,
            ),
            rule=rule,
            limits=rules.limits,
            caps=_cap_facts(context, rule, usage, rules),
            tz=ZoneInfo(customer.time_zone or self.runtime.settings.default_time_zone),
            now=now,
        )
        if isinstance(decision, Stop) and decision.status == MessageStatus.PAUSED:
            # Held until its rule comes back; due again at once then (it is due now).
            await self._writes.run(
                lambda session: repository.pause_message(
                    session, message_id=message.id, worker_id=self.worker_id, now=now
                )
            )
            return "paused"
        if isinstance(decision, Stop):
            await self._finish(
                repository.Finish(message.id, decision.status, now=now, reason=decision.reason),
                following=self._following(context, rule, decision.status, decision.reason, now),
            )
            return decision.status.value
        if isinstance(decision, Defer):
            await self._defer(message.id, until=decision.until, now=now, reason="frequency_cap")
            return "deferred"
        if not self.breaker.allows(now):
            # Another send of this batch paused sending: wait with the rest, no attempt used.
            assert self.breaker.pause is not None
            await self._defer(
                message.id, until=self.breaker.pause.until, now=now, reason="sender_paused"
            )
            return "deferred"
        # The slot of the recipient's domain under the sending rates, taken now (or on an
        # earlier round, which put the message aside until it came).
        reserved = self._pace_slots.pop(message.id, None) is not None
        if not reserved:
            wait, reserved = self._domain_slot(customer.email)
            if wait > INLINE_PACE_SECONDS:
                # Long: the message waits in the outbox, and mail to other domains goes on.
                until = now + timedelta(seconds=wait)
                self._pace_slots[message.id] = until
                await self._defer(message.id, until=until, now=now, reason="domain_rate")
                return "deferred"
            if wait > 0:
                await asyncio.sleep(wait)  # short: cheaper than a round through the outbox
        coupon = None
        if rule is not None and rule.coupon is not None:
            coupon = await take_coupon(
                self.runtime.session_factory,
                message_id=message.id,
                pool=rule.coupon.pool,
                shop=customer.shop,
                now=now,
            )
            if coupon is None and rule.coupon.when_empty == "skip":
                await self._finish(
                    repository.Finish(
                        message.id, MessageStatus.SKIPPED, now=now, reason="coupon_pool_empty"
                    )
                )
                return "skipped"
        assert customer.email is not None
        try:
            raw, message_id = await self.build_message(
                context,
                rule=rule,
                matched=matched,
                coupon=coupon.context() if coupon else None,
                now=now,
                store=self._link_store(message.id, now),
                recommendations=recommendations,
            )
        except RenderTimeout as exc:
            # It would take as long again: fail it, and the batch goes on.
            return await self._fail(message, "render_timeout", exc, now=now)
        except (TemplateError, ValueError) as exc:
            # A broken template or address will not heal by retrying: fail it, loudly.
            return await self._fail(message, "render_error", exc, now=now)
        started = time.perf_counter()
        try:
            outcome = await self.sender.send(
                envelope_from=envelope_sender(
                    message.id,
                    from_address=self._from_address,
                    bounce_address=self.runtime.settings.bounce_address,
                    secret=self.runtime.settings.secret_key,
                ),
                recipient=customer.email,
                message=raw,
                reserved=reserved,
            )
        except SmtpUtf8Unsupported as exc:
            # Not the address's fault, nor worth retrying on this server: fail it, saying so.
            return await self._fail(message, "smtputf8_unsupported", exc, now=now)
        except ValueError as exc:  # an address that cannot go on the wire
            return await self._fail(message, "invalid_address", exc, now=now)
        observe_send(outcome, seconds=time.perf_counter() - started)
        now = self.runtime.clock.now()
        attempt = message.attempts  # loaded after the claim, which counted this attempt
        verdict = None if isinstance(outcome, Delivered) else outcome.verdict
        if verdict == Verdict.SENDER:
            assert not isinstance(outcome, Delivered)
            return await self._sender_fault(context, outcome, attempt=attempt)
        # Anything else came past connecting, AUTH and MAIL FROM: the sender side works.
        if (ended := self.breaker.record_success()) is not None:
            await self._resume(ended)
        if isinstance(outcome, Delivered):
            await self._finish(
                repository.Finish(
                    message.id,
                    MessageStatus.SENT,
                    now=now,
                    recipient=customer.email,
                    smtp_message_id=message_id,
                    attempt=attempt,
                    smtp_code=250,
                ),
                following=self._following(context, rule, MessageStatus.SENT, None, now),
            )
            return "sent"
        if verdict == Verdict.REJECTED:
            # Policy, reputation, content: this message will not go, the address may.
            assert isinstance(outcome, PermanentFailure)
            await self._finish(
                repository.Finish(
                    message.id,
                    MessageStatus.FAILED,
                    now=now,
                    reason="rejected",
                    smtp_code=outcome.code,
                    error=outcome.detail,
                    attempt=attempt,
                )
            )
            return "failed"
        if verdict == Verdict.MAILBOX_GONE:
            assert isinstance(outcome, PermanentFailure)
            bounce, email_address = outcome, customer.email

            async def fail_and_suppress(session: AsyncSession) -> None:
                await repository.finish_message(
                    session,
                    message_id=message.id,
                    worker_id=self.worker_id,
                    status=MessageStatus.FAILED,
                    now=now,
                    reason="hard_bounce",
                    smtp_code=bounce.code,
                    error=bounce.detail,
                    attempt=attempt,
                )
                await suppressions.suppress(
                    session,
                    email=email_address,
                    reason=SuppressionReason.HARD_BOUNCE,
                    detail=f"{bounce.code} {bounce.detail}",
                )

            await self._writes.run(fail_and_suppress)
            return "failed"
        assert isinstance(outcome, TemporaryFailure)
        return await self._retry_or_fail(context, outcome, attempt=attempt)

    async def build_message(
        self,
        context: SendContext,
        *,
        rule: Rule | None,
        matched: Sequence[OrderItem],
        coupon: Mapping[str, Any] | None,
        now: datetime,
        store: StoreLinks,
        recommendations: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[bytes, str]:
        """The message's bytes as they go on the wire (rendered, tracked, composed, signed)
        and its Message-ID. TemplateError or ValueError when it cannot be built."""
        message, customer = context.message, context.customer
        assert customer.email is not None
        settings = self.runtime.settings
        # Marketing mail only: the RFC 8058 one-click headers and the footer link.
        unsubscribe_url = marketing_unsubscribe_url(
            kind=message.kind,
            public_url=settings.public_url,
            customer_id=customer.id,
            secrets=settings.unsubscribe_secrets,
        )
        # Off the event loop and time-limited: a slow template fails its message alone.
        rendered = await self.renderer.render_off_loop(
            message.template,
            locale=customer.locale,
            context=template_context(
                settings,
                context,
                rule=rule,
                matched=matched,
                unsubscribe_url=unsubscribe_url,
                coupon=coupon,
                recommendations=recommendations,
                survey=message_survey_context(
                    message_id=message.id,
                    public_url=settings.public_url,
                    secrets=settings.survey_secrets,
                    now=now,
                    kind=survey_kind(rule),
                ),
                review=self._review_context(context, rule, matched, now),
            ),
        )
        # Open pixel and click redirects, stored before the mail can be read.
        rendered = await track_message(
            self.runtime, rule=rule, rendered=rendered, unsubscribe_url=unsubscribe_url, store=store
        )
        email, message_id = compose_message(
            rendered=rendered,
            from_name=self._from_name,
            from_address=self._from_address,
            to_name=" ".join(filter(None, [customer.first_name, customer.last_name])) or None,
            to_address=customer.email,
            message_id_domain=self._message_id_domain,
            now=now,
            reply_to=settings.reply_to,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=marketing_unsubscribe_mailto(
                kind=message.kind,
                customer_id=customer.id,
                domain=settings.inbound_domain,
                secrets=settings.unsubscribe_secrets,
            ),
            extra_headers=feedback_headers(
                message.id, provider=settings.mail_provider, secret=settings.secret_key
            ),
        )
        return dkim_sign(message_bytes(email), settings.dkim), message_id

    def _review_context(
        self, context: SendContext, rule: Rule | None, matched: Sequence[OrderItem], now: datetime
    ) -> dict[str, Any] | None:
        """`review` of a rule with `review`: the items to rate, links signed for each; of a
        review.answered rule: the review it follows up."""
        if rule is None or (rule.review is None and context.review is None):
            return None
        settings = self.runtime.settings
        links = links_for_shop(settings, shop_of(context), context.catalog)
        if (answered := answered_review(context, rule, links)) is not None:
            return answered
        if rule.review is None:
            return None
        chosen = distinct_items(
            [(item.position, item) for item in matched],
            position=review_item_position(context.message.dedupe_key),
        )
        return message_review_context(
            [(position, item, links.item(item)) for position, item in chosen],
            message_id=context.message.id,
            public_url=settings.public_url,
            secrets=settings.survey_secrets,
            now=now,
            per=rule.review.per,
        )

    def _domain_slot(self, email: str | None) -> tuple[float, bool]:
        """The wait for the recipient's domain slot, now taken, and whether one was taken."""
        if email is None:
            return 0.0, False
        try:
            return self.sender.reserve(email), True
        except ValueError:
            return 0.0, False  # an address that cannot go on the wire fails at send

    def _link_store(self, message_id: int, now: datetime) -> StoreLinks:
        async def store(links: Sequence[NewLink]) -> list[int]:
            # With the links of the other messages stored meanwhile: one INSERT for them all.
            return await self._writes.run_batched(
                add_message_links, MessageLinks(message_id, links, now)
            )

        return store

    async def _fail(self, message: Message, reason: str, exc: Exception, *, now: datetime) -> str:
        # The error text can hold the address: it goes to the message row (erased with the
        # customer), the log gets only its kind.
        log.error("message %s failed (%s): %s", message.id, reason, type(exc).__name__)
        await self._finish(
            repository.Finish(
                message.id,
                MessageStatus.FAILED,
                now=now,
                reason=reason,
                error=str(exc),
                attempt=message.attempts,
            )
        )
        return "failed"

    def _following(
        self,
        context: SendContext,
        rule: Rule | None,
        status: MessageStatus,
        reason: str | None,
        now: datetime,
    ) -> Callable[[AsyncSession], Awaitable[int]] | None:
        """The write that plans the sequence's next step, run with this one's outcome; None
        when the sequence ends here."""
        message = context.message
        if rule is None or not rule.steps:
            return None
        following = next_step(
            rule,
            step=message.step,
            dedupe_key=message.dedupe_key,
            variant=message.variant,
            event_at=message.event_at,
            send_at=message.send_at,
            status=status,
            reason=reason,
            decided_at=now,
            tz=ZoneInfo(context.customer.time_zone or self.runtime.settings.default_time_zone),
        )
        if following is None:
            return None
        plans = [following]
        return lambda session: insert_planned(
            session, plans, customer_id=message.customer_id, order_id=message.order_id
        )

    @staticmethod
    def _send_facts(
        context: SendContext,
        history: Sequence[PlacedItem],
        *,
        matched: Sequence[OrderItem],
        rule: Rule | None,
        previous: PreviousStep | None,
        rule_missing: bool,
        orders: int = 0,
    ) -> SendFacts:
        message, customer, order = context.message, context.customer, context.order
        purchased = [Purchase.of(item.facts()) for item in matched]
        others = [
            (item.placed_at, Purchase(item.sku, item.category, item.categories))
            for item in history
            if order is not None and item.order_id != order.id
        ]
        placed_at = order.placed_at if order is not None else None
        sequence = (
            sequence_facts(
                rule,
                step=message.step,
                purchased=purchased,
                purchases=others,
                previous_at=previous.at if previous is not None else None,
                event_at=message.event_at or placed_at,
                opened=previous is not None and previous.opened,
                clicked=previous is not None and previous.clicked,
                answered=previous is not None and previous.answered,
            )
            if rule is not None
            else None
        )
        return SendFacts(
            kind=message.kind,
            expires_at=message.expires_at,
            customer_deleted=customer.deleted_at is not None,
            email=customer.email,
            marketing_consent=customer.marketing_consent,
            suppressed=context.suppressed,
            order_status=order.status if order else None,
            rule_missing=rule_missing,
            skip_if=tuple(rule.skip_if) if rule else (),
            purchased=purchased,
            bought_since=bought_after(placed_at, others),
            sequence=sequence,
            condition=rule.if_ if rule else None,
            orders=orders,
        )

    async def _defer(self, message_id: int, *, until: datetime, now: datetime, reason: str) -> None:
        """Back to the queue until `until`, no attempt used (caps, pauses, sending rates)."""
        await self._writes.run(
            lambda session: repository.defer_message(
                session,
                message_id=message_id,
                worker_id=self.worker_id,
                until=until,
                now=now,
                reason=reason,
            )
        )

    async def _sender_fault(
        self, context: SendContext, outcome: TemporaryFailure | PermanentFailure, *, attempt: int
    ) -> str:
        """Our side failed (connection, TLS, AUTH, MAIL FROM, 421): try again later, with no
        attempt used and no recipient touched; a run of these pauses sending."""
        settings = self.runtime.settings
        now = self.runtime.clock.now()
        error = outcome.detail if outcome.code else f"connection: {outcome.detail}"
        if (pause := self.breaker.record_failure(now, error)) is not None:
            await self._pause(pause, now=now)
        # While paused, the breaker's growing waits are the backoff: the message is due again
        # when the pause ends, ready for the probe.
        retry_at = (
            self.breaker.pause.until
            if self.breaker.pause is not None
            else now + timedelta(seconds=settings.retry_base_seconds)
        )
        await self._writes.run(
            lambda session: repository.retry_message(
                session,
                message_id=context.message.id,
                worker_id=self.worker_id,
                retry_at=retry_at,
                now=now,
                attempt=attempt,
                smtp_code=outcome.code,
                error=error,
                sender_fault=True,
            )
        )
        return "sender_fault"

    async def _pause(self, pause: Pause, *, now: datetime) -> None:
        # The reason is the server's reply to connecting, AUTH or MAIL FROM: no recipient.
        log.warning(
            "sending paused until %s after %d sender-side failures in a row: %s",
            pause.until.isoformat(),
            pause.failures,
            pause.reason,
        )
        observe_sender_pause(paused=True)
        try:
            async with transaction(self.runtime.session_factory) as session:
                await repository.record_sender_pause(
                    session,
                    worker_id=self.worker_id,
                    paused_at=now,
                    paused_until=pause.until,
                    failures=pause.failures,
                    reason=pause.reason,
                )
        except Exception:
            log.exception("could not record the sending pause")

    async def _resume(self, ended: Pause) -> None:
        log.info("sending resumed: the SMTP server accepts our mail again (%s)", ended.reason)
        observe_sender_pause(paused=False)
        try:
            async with transaction(self.runtime.session_factory) as session:
                await repository.clear_sender_pause(session, worker_id=self.worker_id)
        except Exception:
            log.exception("could not clear the sending pause")

    async def _retry_or_fail(
        self, context: SendContext, outcome: TemporaryFailure, *, attempt: int
    ) -> str:
        settings = self.runtime.settings
        now = self.runtime.clock.now()
        error = outcome.detail if outcome.code else f"connection: {outcome.detail}"
        retry_at = now + timedelta(
            seconds=retry_delay(
                attempt, base=settings.retry_base_seconds, cap=settings.retry_max_seconds
            )
        )
        expires_at = context.message.expires_at
        if attempt >= settings.max_attempts or (expires_at is not None and retry_at > expires_at):
            await self._finish(
                repository.Finish(
                    context.message.id,
                    MessageStatus.FAILED,
                    now=now,
                    reason="retries_exhausted",
                    error=error,
                    attempt=attempt,
                    smtp_code=outcome.code,
                )
            )
            return "failed"
        await self._writes.run(
            lambda session: repository.retry_message(
                session,
                message_id=context.message.id,
                worker_id=self.worker_id,
                retry_at=retry_at,
                now=now,
                attempt=attempt,
                smtp_code=outcome.code,
                error=error,
            )
        )
        return "retry"

    async def _finish(
        self,
        finish: repository.Finish,
        *,
        following: Callable[[AsyncSession], Awaitable[int]] | None = None,
    ) -> None:
        owned = await self._writes.run_batched(self._record_finishes, (finish, following))
        if not owned:
            log.warning(
                "message %s was taken over by another worker before it was recorded",
                finish.message_id,
            )

    async def _finish_batch(
        self,
        session: AsyncSession,
        finishes: Sequence[
            tuple[repository.Finish, Callable[[AsyncSession], Awaitable[int]] | None]
        ],
    ) -> list[bool]:
        """The outcomes of the sends that ended meanwhile, in a few statements; each owned
        message's next sequence step in the same write: never a step decided and its
        follow-up lost."""
        owned = await repository.finish_messages(
            session, worker_id=self.worker_id, finishes=[finish for finish, _ in finishes]
        )
        for (_, following), held in zip(finishes, owned, strict=True):
            if held and following is not None:
                await following(session)
        return owned


def _cap_facts(
    context: SendContext, rule: Rule | None, usage: Sequence[CapEntry], rules: RuleSet
) -> CapFacts:
    """The customer's other messages as the batch began (`repository.cap_usage`): those sent
    hold their slot from when they went; those due or in flight (claimed in the same batch)
    hold one now if they rank higher."""
    message = context.message
    rank = (rule.priority if rule else 0, -message.id)
    if not usage:
        return CapFacts(rank=rank)
    sent, waiting = [], []
    for entry in usage:
        if entry.id == message.id:
            continue
        if entry.status == MessageStatus.SENT:
            if entry.sent_at is not None:
                sent.append(Sent(entry.sent_at, entry.rule_id, entry.kind))
        else:
            other = rules.by_id(entry.rule_id)
            priority = other.priority if other else 0
            waiting.append(Waiting(entry.rule_id, entry.kind, (priority, -entry.id)))
    return CapFacts(rank=rank, sent=sent, waiting=waiting)


def template_context(
    settings: Settings,
    context: SendContext,
    *,
    rule: Rule | None,
    matched: Sequence[OrderItem],
    unsubscribe_url: str | None,
    coupon: Mapping[str, Any] | None,
    recommendations: Sequence[Mapping[str, Any]] | None,
    survey: Mapping[str, Any] | None,
    review: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the message's template is rendered with. The caller gives what acts on a click
    or is handed out (unsubscribe, coupon, survey and review links): the send's own, or an
    operator's view's samples (app/outbox/rendering.py)."""
    message = context.message
    return build_context(
        customer=context.customer,
        order=context.order,
        items=context.items,
        matched_items=matched,
        send_at=message.send_at,
        shop_name=settings.from_address[0] or settings.public_url,
        unsubscribe_url=unsubscribe_url,
        coupon=coupon,
        recommendations=recommendations,
        links=links_for_shop(settings, shop_of(context), context.catalog),
        rule_links=rule.links if rule else None,
        survey=survey,
        review=review,
    )


def answered_review(
    context: SendContext, rule: Rule | None, links: ShopLinks
) -> dict[str, Any] | None:
    """`review` of a review.answered rule's message: the review it follows up; None for
    any other message."""
    if rule is None or rule.when.event != REVIEW_ANSWERED or context.review is None:
        return None
    found = context.review
    item = next((i for i in context.items if i.position == found.item_position), None)
    return answered_review_context(
        stars=found.stars,
        comment=found.comment,
        answered_at=found.answered_at,
        name=found.name,
        sku=found.sku,
        category=found.category,
        links=links.item(item) if item is not None else {},
    )


def matched_items(context: SendContext, rule: Rule | None) -> list[OrderItem]:
    """The items the rule is about, less what was refunded: the template lists them, rebuy
    checks compare them."""
    item_filter = rule.when.items if rule else None
    left = remaining_quantities(context.items, context.order.refunds if context.order else [])
    return [
        item
        for item, quantity in zip(context.items, left, strict=True)
        if quantity > 0 and (item_filter is None or item_filter.matches(item.facts(quantity)))
    ]


def shop_of(context: SendContext) -> str:
    """The shop whose links the message carries: its order's, else its customer's."""
    return context.order.shop if context.order is not None else context.customer.shop


def _cap_limits(context: SendContext, rules: RuleSet) -> list[Limit]:
    """The frequency caps a message is under: its rule's and its kind's."""
    return cap_limits(rules.by_id(context.message.rule_id), context.message.kind, rules.limits)


def _needs_history(context: SendContext, rules: RuleSet) -> bool:
    rule = rules.by_id(context.message.rule_id)
    return rule is not None and rule.reads_purchases


def _counts_orders(context: SendContext, rules: RuleSet) -> bool:
    rule = rules.by_id(context.message.rule_id)
    return rule is not None and rule.if_ is not None and rule.if_.orders is not None


def _previous_key(context: SendContext) -> str | None:
    """The dedupe key of the step before this message, for a later step of a sequence."""
    message = context.message
    if message.step <= 1:
        return None
    return step_dedupe_key(first_step_key(message.dedupe_key), message.step - 1)


def recommend_requests(contexts: Sequence[SendContext], rules: RuleSet) -> list[RecommendRequest]:
    """What the messages of rules with `recommend` ask of the catalog: products to go with
    the items the rule is about (every item of the order when it names none)."""
    requests = []
    for context in contexts:
        rule = rules.by_id(context.message.rule_id)
        if rule is None or rule.recommend is None:
            continue
        seeds = matched_items(context, rule) or list(context.items)
        requests.append(
            RecommendRequest(
                key=context.message.id,
                shop=context.customer.shop,
                customer_id=context.customer.id,
                spec=rule.recommend,
                items=item_refs(seeds),
                categories=[item.category for item in seeds if item.category],
            )
        )
    return requests

"""Email templates: locale fallback, sandboxed jinja2 rendering, Babel formatting filters.

Layout under `templates_dir` (normally `templates/email/`)::

    <template>/<locale>/subject.txt   one line after rendering
    <template>/<locale>/body.html     usually {% extends "_layouts/base.html" %}
    <template>/<locale>/body.txt      optional; derived from the HTML when missing
    _layouts/, _partials/             shared by every template

Locale fallback: the customer's locale as given (`ru-RU`), the same with the other
separator (`ru_RU`), its language (`ru`), then the default locale.

Filters, formatting for the locale being rendered:

* `{{ order.total|money(order.currency) }}`: amount with currency symbol; without a
  currency (None) just the localized number; None renders as "".
* `{{ order.created_at|date }}` / `|date("long")`: a date or datetime's date part.
* `{{ message.send_at|datetime }}` / `|datetime("short", tz="Europe/Berlin")`: shown in
  the datetime's own zone unless `tz` is given; naive values count as UTC.

The HTML comes back with its <style> rules also copied into style attributes
(`app.mail.inline`), so previews and sent mail look the same in clients that drop <style>.

Templates come from the shop operator, and their context from webhooks, so rendering
is sandboxed and undefined variables are errors rather than silent blanks. A render has a
time limit (`time_limit`, the RENDER_TIMEOUT setting) and size limits
(`app.mail.render_budget`); `render_off_loop` runs it on a thread of its own, so the event
loop never waits for a template.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache, partial
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, get_timezone
from babel.numbers import format_currency, format_decimal
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from app.mail.html_to_text import html_to_text
from app.mail.inline import InlineCssError, inline_css
from app.mail.render_budget import (
    RenderOverBudget,
    bounded_binop,
    bounded_concat,
    bounded_lipsum,
    bounded_range,
    budgeted_loop,
    check_arguments,
    check_brace_format,
    check_call,
    check_printed,
    check_time,
    check_weight,
    guard_filters,
    render_budget,
)

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_LOCALE_NAME = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
# Anything that would break a subject onto several lines or hide characters in it.
_SUBJECT_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SUBJECT_SPACES = re.compile(r"\s+")

# The Babel locale of the render in progress: filters need it, and keeping it out of
# the template context means templates cannot read or override it.
_current_locale: ContextVar[Locale] = ContextVar("aftersale_mail_locale")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class TemplateError(Exception):
    """A template is missing, invalid, or failed to render; the message says where."""


class RenderTimeout(TemplateError):
    """The render ran past its time limit or loop budget: the template would stall sending."""


class TemplateRenderer:
    """Renders from `templates_dir` as it is on disk, give or take `recheck_seconds`: a
    long-lived renderer (the worker's) trusts what it read of the folder for that long, so
    sending does not stat every template file for every message, and an edit shows within
    it."""

    def __init__(
        self,
        templates_dir: Path,
        *,
        default_locale: str,
        recheck_seconds: float = 1.0,
        time_limit: float | None = 5.0,
    ) -> None:
        self._dir = templates_dir.resolve()
        self._default_locale = default_locale
        self._recheck_seconds = recheck_seconds
        self.time_limit = time_limit
        self._threads: ThreadPoolExecutor | None = None
        self._checked_at = time.monotonic()
        # (template, requested locale) -> (locale folder, or None; whether it has body.txt)
        self._layouts: dict[tuple[str, str | None], tuple[str | None, bool]] = {}
        self._env = _MailSandbox(
            # Compiled templates are checked against their files in _recheck, not at
            # every use.
            auto_reload=False,
            loader=jinja2.FileSystemLoader(self._dir),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            finalize=_printable,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters["money"] = _money
        self._env.filters["date"] = _date
        self._env.filters["datetime"] = _datetime
        guard_filters(self._env.filters)
        # Not guarded themselves: they are the guards the parser puts around loops and `~`.
        self._env.filters["_budgeted_loop"] = _budgeted_loop
        self._env.filters["_checked_text"] = _checked_text

    def has_template(self, template: str, locale: str) -> bool:
        """True when `render(template, locale=locale, ...)` finds a locale to use."""
        if not _TEMPLATE_NAME.fullmatch(template):
            return False
        return self._layout(template, locale)[0] is not None

    async def render_off_loop(
        self, template: str, *, locale: str | None, context: Mapping[str, Any]
    ) -> RenderedEmail:
        """`render` on this renderer's thread; RenderTimeout past `time_limit`."""
        if self._threads is None:
            # Renders hold the GIL, so more threads would not make them faster; two let one
            # message's render start while another's finishes.
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="render")
        job = asyncio.get_running_loop().run_in_executor(
            self._threads, partial(self.render, template, locale=locale, context=context)
        )
        if self.time_limit is None:
            return await job
        try:
            # The render stops itself at its deadline; this is the net for one that cannot
            # (stuck in C code) or that waited long for a thread behind such a one.
            return await asyncio.wait_for(job, timeout=2 * self.time_limit + 1)
        except TimeoutError:
            raise RenderTimeout(
                f"{template}: rendering took longer than {self.time_limit:g} s"
            ) from None

    def render(
        self, template: str, *, locale: str | None, context: Mapping[str, Any]
    ) -> RenderedEmail:
        with render_budget(self.time_limit):
            return self._render(template, locale=locale, context=context)

    def _render(
        self, template: str, *, locale: str | None, context: Mapping[str, Any]
    ) -> RenderedEmail:
        if not _TEMPLATE_NAME.fullmatch(template):
            raise TemplateError(f"invalid template name {template!r}: use [a-z0-9][a-z0-9_-]*")
        folder, has_text = self._layout(template, locale)
        if folder is None:
            tried = ", ".join(self._locale_candidates(locale))
            raise TemplateError(
                f"template {template!r} has no subject.txt + body.html for locale "
                f"{locale!r} (tried {tried})"
            )
        token = _current_locale.set(self._babel_locale(folder, locale))
        try:
            prefix = f"{template}/{folder}"
            subject = _single_line(self._render_file(f"{prefix}/subject.txt", context))
            html = self._render_file(f"{prefix}/body.html", context)
            if has_text:
                text = self._render_file(f"{prefix}/body.txt", context).strip() + "\n"
            else:
                try:
                    text = html_to_text(html) + "\n"
                except AssertionError as exc:
                    # The standard library's HTML parser refuses some `<![...` markup this way.
                    raise TemplateError(f"{prefix}/body.html: HTML cannot be read: {exc}") from exc
        finally:
            _current_locale.reset(token)
        try:
            html = inline_css(html)
        except InlineCssError as exc:
            raise TemplateError(f"{prefix}/body.html: {exc}") from exc
        try:
            check_time()  # what came after the templates (text, CSS) counts too
        except RenderOverBudget as exc:
            raise RenderTimeout(f"{prefix}: {exc}") from exc
        return RenderedEmail(subject=subject, text=text, html=html)

    def _render_file(self, name: str, context: Mapping[str, Any]) -> str:
        with self._errors_named(name):
            return self._env.get_template(name).render(context)

    @contextmanager
    def _errors_named(self, name: str) -> Iterator[None]:
        # Every failure inside a template (a filter's TypeError as much as a jinja
        # error) is the template author's to fix, so all become TemplateError.
        try:
            yield
        except jinja2.TemplateSyntaxError as exc:
            where = _relative(self._dir, exc.filename) or exc.name or name
            raise TemplateError(
                f"{name}: syntax error in {where} line {exc.lineno}: {exc.message}"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{name}: included template not found: {exc.name}") from exc
        except RenderOverBudget as exc:
            where = self._template_location(exc.__traceback__) or name
            raise RenderTimeout(f"{name}: stopped in {where}: {exc}") from exc
        except Exception as exc:
            where = self._template_location(exc.__traceback__) or name
            kind = "sandbox refused" if isinstance(exc, SecurityError) else "error"
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise TemplateError(f"{name}: {kind} in {where}: {detail}") from exc

    def _template_location(self, tb: TracebackType | None) -> str | None:
        """The "file line N" of the innermost template frame.

        jinja rewrites tracebacks so template frames carry the template's file and line.
        """
        found: str | None = None
        while tb is not None:
            relative = _relative(self._dir, tb.tb_frame.f_code.co_filename)
            if relative is not None:
                found = f"{relative} line {tb.tb_lineno}"
            tb = tb.tb_next
        return found

    def _locale_candidates(self, locale: str | None) -> list[str]:
        candidates: list[str] = []
        for value in (locale, self._default_locale):
            if not value:
                continue
            language = re.split(r"[-_]", value, maxsplit=1)[0]
            for option in (value, value.replace("-", "_"), value.replace("_", "-"), language):
                # A locale names a folder, so anything but a plain tag is ignored.
                if _LOCALE_NAME.fullmatch(option) and option not in candidates:
                    candidates.append(option)
        return candidates

    def _layout(self, template: str, locale: str | None) -> tuple[str | None, bool]:
        """The locale folder `template` renders from for `locale` (None: no folder has
        subject.txt and body.html), and whether that folder has its own body.txt."""
        self._recheck()
        key = (template, locale)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = self._read_layout(template, locale)
        return found

    def _read_layout(self, template: str, locale: str | None) -> tuple[str | None, bool]:
        for candidate in self._locale_candidates(locale):
            folder = self._dir / template / candidate
            if (folder / "subject.txt").is_file() and (folder / "body.html").is_file():
                return candidate, (folder / "body.txt").is_file()
        return None, False

    def _recheck(self) -> None:
        """Forget the folder layouts and every compiled template whose file changed, once
        what is known is older than `recheck_seconds`."""
        now = time.monotonic()
        if now - self._checked_at < self._recheck_seconds:
            return
        self._checked_at = now
        self._layouts.clear()
        cache = self._env.cache
        if cache is not None and not all(compiled.is_up_to_date for compiled in cache.values()):
            # Simpler than finding what includes what: everything compiles again.
            cache.clear()

    def _babel_locale(self, folder: str, requested: str | None) -> Locale:
        # Format for the customer's own region (ru_RU, en_GB) when the template folder
        # is in their language; otherwise match the language the email is written in.
        for value in (requested, folder, self._default_locale):
            parsed = _parse_locale(value)
            if parsed is not None and parsed.language == _language(folder):
                return parsed
        return _parse_locale(folder) or Locale("en")


def rendering_language() -> str | None:
    """The language (`ru`) of the template being rendered; None outside a render.

    For context values that print themselves in the mail's language (`survey.links`).
    """
    locale = _current_locale.get(None)
    return locale.language if locale is not None else None


class _MailSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, stricter where mail templates need it, and with the
    budget of `app.mail.render_budget` checked in calls, loops, `~`, operators and output."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.concat = bounded_concat  # type: ignore[method-assign]
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _BudgetHooks().visit(tree)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return bounded_binop(operator, left, right, self.binop_table[operator])

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_call(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_brace_format(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> Any:
            check_arguments(args, kwargs)
            return wrapper(*args, **kwargs)

        return checked

    def getattr(self, obj: Any, attribute: str) -> Any:
        # The context is made of dicts: `order.items` is the order's items (as documented),
        # not the dict's `items` method.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        # Jinja answers with an Undefined that fails only when printed: inside map(), sort()
        # or groupby() it would render as "Undefined" and the refusal would go unnoticed.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )


class _BudgetHooks(NodeTransformer):
    """Puts `_budgeted_loop` around what every `{% for %}` iterates and `_checked_text`
    around each operand of `~`, whose joins run in jinja's code, out of the sandbox's reach."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filtered(node.iter, "_budgeted_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filtered(operand, "_checked_text") for operand in node.nodes]
        return node


def _filtered(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


# Taking the context keeps jinja from calling it at compile time to fold a constant loop.
@jinja2.pass_context
def _budgeted_loop(context: Context, iterable: Any) -> Iterator[Any]:
    return budgeted_loop(iterable)


def _checked_text(value: Any) -> Any:
    check_time()
    check_weight(value)
    return value


# Taking the eval context keeps jinja from folding constant output at compile time, which
# it would escape before `finalize` sees it.
@jinja2.pass_eval_context
def _printable(eval_context: EvalContext, value: Any) -> Any:
    """What `{{ ... }}` may print: never a function, class or bare object, whose text is a
    repr with internal names and memory addresses that would go out in the mail."""
    if isinstance(value, jinja2.Undefined):
        return value  # fails as undefined when printed
    check_printed(value)
    kind = type(value)
    # object's own text is "<module.Class object at 0x...>": no class of its own gave one.
    default_text = not any(
        "__str__" in vars(base) or "__repr__" in vars(base) for base in kind.__mro__[:-1]
    )
    if callable(value) or default_text:
        raise SecurityError(f"a {kind.__name__!r} object cannot be printed")
    return value


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html")


def _single_line(value: str) -> str:
    return _SUBJECT_SPACES.sub(" ", _SUBJECT_BREAKS.sub(" ", value)).strip()


def _relative(root: Path, filename: str | None) -> str | None:
    if not filename:
        return None
    try:
        return Path(filename).resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _language(value: str) -> str:
    return re.split(r"[-_]", value, maxsplit=1)[0].lower()


def _parse_locale(value: str | None) -> Locale | None:
    if not value or not _LOCALE_NAME.fullmatch(value):
        return None
    try:
        return Locale.parse(value, sep="-" if "-" in value else "_")
    except (UnknownLocaleError, ValueError):
        return None


def _money(amount: Decimal | int | float | str | None, currency: str | None = None) -> str:
    if amount is None:
        return ""
    try:
        number = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"money: {amount!r} is not a number") from exc
    return _formatted_money(number, currency.upper() if currency else None, _current_locale.get())


# Babel looks its locale data up again on every call, a good part of a render's time; the
# same prices and dates come back mail after mail, and the results depend on nothing else.
@lru_cache(maxsize=4096)
def _formatted_money(number: Decimal, currency: str | None, locale: Locale) -> str:
    if currency:
        return format_currency(number, currency, locale=locale)
    return format_decimal(number, format="#,##0.00", locale=locale)


def _date(value: date | None, format: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return _formatted_date(value, format, _current_locale.get())


@lru_cache(maxsize=4096)
def _formatted_date(value: date, format: str, locale: Locale) -> str:
    return format_date(value, format=format, locale=locale)


def _datetime(
    value: datetime | None,
    format: str = "medium",
    tz: str | None = None,
) -> str:
    if value is None:
        return ""
    zone = get_timezone(tz) if tz else None
    return format_datetime(value, format=format, tzinfo=zone, locale=_current_locale.get())

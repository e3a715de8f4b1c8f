"""What one template render may spend: time, loop iterations, and the size of what it makes.

Templates come from the shop operator, so `{% for i in range(10**7) %}`, `"%0500000000d"
|format(1)` or `'x' * 10**9` must fail the one message, quickly, instead of holding a worker.
A Python thread cannot be stopped from outside, so a render stops itself: the sandbox checks
the deadline at every call, loop iteration, printed value and joined output (`check_time`),
and refuses up front the single operations that would run long, or allocate a lot, inside C
code where no check can reach (repetition, powers, format widths, padding, and stringifying
a value that holds too much). `tests/mail/test_render_limits.py` shows each.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from itertools import islice
from string import Formatter
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import _PassArg

# Characters of one rendered part (subject, text or HTML) and of any one string a render makes.
MAX_TEXT = 1_000_000
# Characters and items a value may hold to be printed, joined, formatted or filtered: what
# its text could grow to. The largest real context (an order of hundreds of items) is far
# below it; a list repeated into itself is not.
MAX_WEIGHT = 1_000_000
# Loop iterations over a whole render (every loop, nested or not, counted together).
MAX_LOOP_ITERATIONS = 100_000
# Characters printed by `{{ ... }}` over a whole render, macros and blocks included.
MAX_PRINTED = 4 * MAX_TEXT
MAX_RANGE = 10_000
# Integers: 4,096 bits is some 1,200 digits, more than any price or count needs.
MAX_INT_BITS = 4_096
# A field width or precision in a format string: `{:>12}` and `%.2f` are what mail needs.
MAX_FORMAT_WIDTH = 1_000
MAX_INDENT = 100
# Input of the filters that take long per character (wordwrap: seconds for 1 MB).
MAX_SLOW_TEXT = 100_000


class RenderOverBudget(Exception):
    """The render ran out of time or loop iterations: its template would stall sending."""


class RenderTooLarge(SecurityError):
    """An operation was refused for what it would make; the sandbox's kind of refusal."""


@dataclass
class _Budget:
    seconds: float
    deadline: float
    iterations: int = 0
    printed: int = 0


_active: ContextVar[_Budget | None] = ContextVar("aftersale_render_budget", default=None)


@contextmanager
def render_budget(seconds: float | None) -> Iterator[None]:
    """Limit the renders inside the block to `seconds` in all (None: no time limit)."""
    limit = seconds if seconds else math.inf
    token = _active.set(_Budget(seconds=limit, deadline=time.monotonic() + limit))
    try:
        yield
    finally:
        _active.reset(token)


def check_time() -> None:
    budget = _active.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise RenderOverBudget(f"rendering took longer than {budget.seconds:g} s")


def budgeted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` iterates through this (see `_MailSandbox._parse`)."""
    budget = _active.get()
    if budget is None:
        yield from iterable
        return
    for value in iterable:
        budget.iterations += 1
        if budget.iterations > MAX_LOOP_ITERATIONS:
            raise RenderOverBudget(f"loops ran over {MAX_LOOP_ITERATIONS:,} iterations in all")
        if time.monotonic() > budget.deadline:
            raise RenderOverBudget(f"rendering took longer than {budget.seconds:g} s")
        yield value


def bounded_concat(pieces: Iterable[str]) -> str:
    """The environment's `concat`: joins a template's, a macro's or a block's output."""
    iterator = iter(pieces)
    kept: list[str] = []
    size = 0
    # Measured a slice at a time: per piece in Python it was a tenth of a render's cost.
    while chunk := list(islice(iterator, 64)):
        size += sum(map(len, chunk))
        if size > MAX_TEXT:
            raise RenderTooLarge(f"the output is over {MAX_TEXT:,} characters")
        kept += chunk
    check_time()
    return "".join(kept)


def check_printed(value: Any) -> None:
    """Each `{{ ... }}`: strings count towards MAX_PRINTED, other values are weighed."""
    if isinstance(value, str):
        budget = _active.get()
        if budget is not None:
            budget.printed += len(value)
            if budget.printed > MAX_PRINTED:
                raise RenderTooLarge(f"over {MAX_PRINTED:,} characters printed in all")
    elif type(value) not in _SCALARS:
        check_weight(value)


def weight(value: Any, limit: int = MAX_WEIGHT) -> int:
    """Characters plus items that `value` holds, counting a shared part each time it is
    reached (as its text would); stops counting past `limit`."""
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        elif isinstance(item, Mapping):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += 1
    return total


def check_weight(value: Any) -> None:
    if type(value) in _SCALARS:
        return
    if weight(value) > MAX_WEIGHT:
        raise RenderTooLarge(f"a value holding over {MAX_WEIGHT:,} characters and items")


_SCALARS = frozenset({int, float, bool, type(None)})


def bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise RenderTooLarge(f"range() of over {MAX_RANGE:,} numbers")
    return values


def bounded_binop(operator: str, left: Any, right: Any, apply: Callable[[Any, Any], Any]) -> Any:
    """`*`, `**`, `%` and `+`, refused when the result would be too large to make."""
    check_time()
    if operator == "*":
        _check_repeat(left, right)
        _check_repeat(right, left)
        if (
            _is_int(left)
            and _is_int(right)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise RenderTooLarge(f"a product of over {MAX_INT_BITS:,} bits")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and _power_bits(left, right):
            raise RenderTooLarge(f"a power of over {MAX_INT_BITS:,} bits")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left)
        check_weight(right)
    elif operator == "+":
        for side in (left, right):
            if isinstance(side, str | bytes | list | tuple):
                check_weight(side)
    result = apply(left, right)
    if isinstance(result, str | bytes) and len(result) > MAX_TEXT:
        raise RenderTooLarge(f"a string of over {MAX_TEXT:,} characters")
    return result


def _power_bits(base: int, exponent: int) -> bool:
    """Whether base ** exponent would be over MAX_INT_BITS."""
    return max(base.bit_length() - 1, 1) * exponent > MAX_INT_BITS


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_repeat(sequence: Any, times: Any) -> None:
    repeated = isinstance(sequence, str | bytes | list | tuple) and _is_int(times) and times > 1
    if repeated and weight(sequence, MAX_WEIGHT // times + 1) * times > MAX_WEIGHT:
        raise RenderTooLarge(f"a repetition of over {MAX_WEIGHT:,} characters and items")


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_percent_format(template: str) -> None:
    for match in _PERCENT_FIELD.finditer(template):
        for number in match.groups():
            _check_width(number)


def check_brace_format(template: str) -> None:
    """A `str.format` template: no field wider than MAX_FORMAT_WIDTH, no nested fields (a
    width taken from an argument could be anything)."""
    try:
        fields = list(Formatter().parse(template))
    except ValueError:
        return  # str.format will say what is wrong with it
    for _literal, _name, spec, _conversion in fields:
        if spec and "{" in spec:
            raise RenderTooLarge("a format field whose width or precision is itself a field")
        for number in re.findall(r"\d+", spec or ""):
            _check_width(number)


def _check_width(number: str | None) -> None:
    if number == "*":
        raise RenderTooLarge("a format field whose width or precision is an argument ('*')")
    if number is not None and int(number) > MAX_FORMAT_WIDTH:
        raise RenderTooLarge(f"a format width or precision over {MAX_FORMAT_WIDTH:,}")


# str (and bytes) methods whose result can be far larger than the string itself.
_GROWING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"})


def check_call(target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Before a template calls `target`: time left, and a str method that neither turns a
    value too heavy into text nor grows its string past MAX_TEXT."""
    check_time()
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if isinstance(owner, str | bytes):
        check_arguments(args, kwargs)
        if name in _GROWING_METHODS:
            _check_growth(owner, name, args, kwargs)
    elif _is_int(owner) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if _is_int(length) and length > MAX_TEXT:
            raise RenderTooLarge(f"to_bytes() of over {MAX_TEXT:,} bytes")


def check_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in args:
        check_weight(value)
    for value in kwargs.values():
        check_weight(value)


def _check_growth(
    text: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    size = len(text)
    if name in ("center", "ljust", "rjust", "zfill"):
        size = args[0] if args and _is_int(args[0]) else size
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        tabs = text.count("\t") if isinstance(text, str) else text.count(b"\t")
        size += tabs * (tab if _is_int(tab) else 0)
    elif name == "replace" and len(args) >= 2:
        size = _replaced_size(text, args[0], args[1])
    elif name == "join" and args:
        size = weight(args[0]) * (len(text) + 1)
    if size > MAX_TEXT:
        raise RenderTooLarge(f"{name}() would make over {MAX_TEXT:,} characters")


def _replaced_size(text: Any, old: Any, new: Any) -> int:
    text, old, new = str(text), str(old), str(new)
    if len(new) <= len(old):
        return len(text)
    found = text.count(old) if old else len(text) + 1
    return len(text) + found * (len(new) - len(old))


# Filters that pick, count or reorder (length, first, map, sort...) leave their input as it
# is; these turn it into text, where a value holding too much would take long in C.
_TEXT_FILTERS = frozenset(
    {
        "capitalize", "center", "e", "escape", "filesizeformat", "forceescape", "format",
        "indent", "join", "lower", "pprint", "replace", "safe", "string", "striptags", "title",
        "tojson", "trim", "truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap",
        "xmlattr", "money", "date", "datetime",
    }
)  # fmt: skip


def guard_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Make every filter check the time first and, when it makes text, the weight of its
    value and arguments; add the size checks of the filters whose arguments say how large
    their result is."""
    for name, function in list(filters.items()):
        filters[name] = _guarded(function, name in _TEXT_FILTERS, _FILTER_CHECKS.get(name))


def _guarded(
    function: Callable[..., Any], text: bool, check: Callable[..., None] | None
) -> Callable[..., Any]:
    passes = _PassArg.from_obj(function) is not None

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        given = args[1:] if passes else args
        check_time()
        if text:
            check_arguments(given, kwargs)
        if check is not None:
            check(*given, **kwargs)
        return function(*args, **kwargs)

    return guarded


def _center(value: Any, width: Any = 80) -> None:
    if _is_int(width) and width > MAX_TEXT:
        raise RenderTooLarge(f"center() to over {MAX_TEXT:,} characters")


def _indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    pad = width if _is_int(width) else len(str(width))
    if pad > MAX_INDENT or pad * (str(value).count("\n") + 1) + len(str(value)) > MAX_TEXT:
        raise RenderTooLarge(f"indent() by over {MAX_INDENT} or to over {MAX_TEXT:,} characters")


def _wordwrap(
    value: Any, width: Any = 79, break_long: Any = True, wrap: Any = None, *args: Any, **kwargs: Any
) -> None:
    _slow_text(value, "wordwrap")
    wrap = kwargs.get("wrapstring", wrap)
    if wrap is not None and len(str(value)) * (len(str(wrap)) + 1) > MAX_TEXT:
        raise RenderTooLarge(f"wordwrap() to over {MAX_TEXT:,} characters")


def _slow_text(value: Any, name: str) -> None:
    if len(str(value)) > MAX_SLOW_TEXT:
        raise RenderTooLarge(f"{name}() of over {MAX_SLOW_TEXT:,} characters")


def _urlize(value: Any, *args: Any, **kwargs: Any) -> None:
    _slow_text(value, "urlize")


def _count(value: Any, number: Any = 1, *args: Any, **kwargs: Any) -> None:
    if _is_int(number) and number > MAX_RANGE:
        raise RenderTooLarge(f"a count of over {MAX_RANGE:,}")


def _replace(value: Any, old: Any = "", new: Any = "", *args: Any) -> None:
    if _replaced_size(value, old, new) > MAX_TEXT:
        raise RenderTooLarge(f"replace() would make over {MAX_TEXT:,} characters")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent_format(str(value))


def _tojson(value: Any, indent: Any = None) -> None:
    if _is_int(indent) and indent > MAX_INDENT:
        raise RenderTooLarge(f"tojson() indent over {MAX_INDENT}")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "batch": _count,
    "slice": _count,
    "replace": _replace,
    "format": _format,
    "tojson": _tojson,
    "urlize": _urlize,
}


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    from jinja2.utils import generate_lorem_ipsum

    if not all(_is_int(v) for v in (n, min, max)) or n > 20 or max > 200:
        raise RenderTooLarge("lipsum() of over 20 paragraphs or 200 words each")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))

"""A template cannot stall sending: a render stops at its time limit and refuses, up front,
operations that would run long or allocate a lot where no check can stop them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.mail.templates import RenderTimeout, TemplateError, TemplateRenderer

CONTEXT = {
    "customer": {"first_name": "Zoë", "last_name": "Łukasiewicz"},
    "items": [{"name": "Tea", "quantity": 2}, {"name": "Mug", "quantity": 1}],
}
# Each would take minutes or gigabytes in a plain sandbox.
REFUSED = [
    # The two of the issue.
    "{% for i in range(10**7) %}x{% endfor %}",
    '{{ "%0500000000d"|format(1) }}',
    "{{ '%0500000000d' % 1 }}",
    "{{ '%*d' % (500000000, 1) }}",
    "{{ '{:0500000000d}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=500000000) }}",
    "{{ 'x' * 10**9 }}",
    "{{ ['x'] * 10**8 }}",
    "{% set l = [[1] * 100000] * 100000 %}{{ l|length }}",
    "{{ 10 ** 100000000 }}",
    "{{ 7 ** 10000000 }}",
    "{{ (10 ** 1000) * (10 ** 1000) }}",
    "{{ 'a'|center(10**9) }}",
    "{{ 'a'.center(10**9) }}",
    "{{ 'a'.zfill(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ ('a' * 999999).replace('a', 'bbbb') }}",
    "{{ ('a' * 999999)|replace('a', 'bbbb') }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ lipsum(10**6) }}",
    "{{ range(1000)|batch(10**9, 'x')|list }}",
    "{{ range(10)|slice(10**9)|list }}",
    "{{ [1]|tojson(indent=10**9) }}",
    "{{ ('ab ' * 300000)|wordwrap(3) }}",
    # Doubling, where each step is small: stopped by the size of what it joins.
    "{% set s = namespace(v='xxxxxxxxxx') %}{% for i in range(40) %}"
    "{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v|length }}",
    "{% set s = namespace(v=['x']) %}{% for i in range(40) %}"
    "{% set s.v = s.v + s.v %}{% endfor %}{{ s.v|length }}",
    # A value that shares its parts: small to build, ten million items as text.
    *(
        "{% set b = [1] * 99999 %}{% set a = [b, b, b, b, b, b, b, b, b, b] %}"
        "{% set c = [a, a, a, a, a, a, a, a, a, a] %}" + use
        for use in (
            "{{ c }}",
            "{{ c|string }}",
            "{{ c|join(',') }}",
            "{{ c|tojson }}",
            "{{ '{}'.format(c) }}",
            "{{ '%s' % (c,) }}",
            "{{ ','.join(c) }}",
            "{{ 'x' ~ c }}",
        )
    ),
    # Nested loops, each under the range limit: the iteration budget.
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    # Output: 10 MB printed a little at a time.
    "{% for i in range(9999) %}{{ 'y' * 999 }}{% endfor %}",
    "{% macro m() %}{% for i in range(9999) %}{{ 'y' * 999 }}{% endfor %}{% endmacro %}"
    "{% set x = m() %}",
    # Recursion, exponential in calls.
    "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
]


def renderer_for(root: Path, body: str, *, time_limit: float | None = 5.0) -> TemplateRenderer:
    folder = root / "slow" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Hi {{ customer.first_name }}")
    (folder / "body.html").write_text(f"<p>Hello</p>\n<p>{body}</p>\n")
    return TemplateRenderer(root, default_locale="en", time_limit=time_limit)


@pytest.mark.parametrize("body", REFUSED)
def test_runaway_templates_fail_fast_with_where(tmp_path: Path, body: str) -> None:
    renderer = renderer_for(tmp_path, body)
    started = time.perf_counter()
    with pytest.raises(TemplateError) as raised:
        renderer.render("slow", locale="en", context=CONTEXT)
    # Refused before the work, long before the 5 s limit.
    assert time.perf_counter() - started < 1.5
    assert "slow/en/body.html" in str(raised.value)


def test_a_slow_render_stops_at_its_time_limit(tmp_path: Path) -> None:
    # Each step is allowed; together they would take about a minute.
    body = (
        "{% for i in range(1000) %}{% for j in range(50) %}"
        "{{ (range(2000)|list|join)|length }}{% endfor %}{% endfor %}"
    )
    renderer = renderer_for(tmp_path, body, time_limit=0.3)
    started = time.perf_counter()
    with pytest.raises(RenderTimeout) as raised:
        renderer.render("slow", locale="en", context=CONTEXT)
    assert time.perf_counter() - started < 1.0
    assert "rendering took longer than 0.3 s" in str(raised.value)
    assert "slow/en/body.html line 2" in str(raised.value)


def test_the_loop_budget_is_a_timeout(tmp_path: Path) -> None:
    renderer = renderer_for(
        tmp_path, "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(RenderTimeout, match="loops ran over 100,000 iterations"):
        renderer.render("slow", locale="en", context=CONTEXT)


def test_what_ordinary_templates_do_still_works(tmp_path: Path) -> None:
    renderer = renderer_for(
        tmp_path,
        "{{ items|map(attribute='name')|join(', ') }}|{{ customer.first_name|upper }}|"
        "{{ '%5.2f'|format(3.14159) }}|{{ '%-6s|' % 'ab' }}{{ '{:>6}'.format('x') }}|"
        "{{ range(3)|list }}|{{ 2 ** 10 }}|{{ 'ab' * 3 }}|{{ 1 + 2 }}|{{ [1] + [2] }}|"
        "{{ items|sum(attribute='quantity') }}|{{ 'a' ~ customer.last_name }}|"
        "{% for item in items %}{{ loop.index }}/{{ loop.length }} {% endfor %}|"
        "{{ 'x'|center(9) }}|{{ items|batch(1)|list|length }}",
    )
    html = renderer.render("slow", locale="en", context=CONTEXT).html
    assert (
        "Tea, Mug|ZOË| 3.14|ab    |     x|[0, 1, 2]|1024|ababab|3|[1, 2]|3|aŁukasiewicz|"
        "1/2 2/2 |    x    |2"
    ) in html


async def test_render_off_loop_keeps_the_event_loop_free(tmp_path: Path) -> None:
    body = (
        "{% for i in range(1000) %}{% for j in range(50) %}"
        "{{ (range(2000)|list|join)|length }}{% endfor %}{% endfor %}"
    )
    renderer = renderer_for(tmp_path, body, time_limit=0.5)
    render = asyncio.create_task(renderer.render_off_loop("slow", locale="en", context=CONTEXT))
    # While it renders, the loop keeps its 10 ms ticks.
    lags = []
    while not render.done():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - before - 0.01)
    with pytest.raises(RenderTimeout):
        await render
    assert len(lags) >= 10
    # Renders hold the GIL in 5 ms slices, so a tick can wait a slice or two, no more.
    assert max(lags) < 0.1, max(lags)


async def test_a_render_that_cannot_stop_itself_times_out_for_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the render were stuck in C code, beyond the sandbox's checks.
    def stuck(html: str) -> str:
        time.sleep(3)
        return html

    monkeypatch.setattr("app.mail.templates.inline_css", stuck)
    renderer = renderer_for(tmp_path, "fine", time_limit=0.2)
    started = time.perf_counter()
    with pytest.raises(RenderTimeout, match=r"longer than 0\.2 s"):
        await renderer.render_off_loop("slow", locale="en", context=CONTEXT)
    assert time.perf_counter() - started < 2.0

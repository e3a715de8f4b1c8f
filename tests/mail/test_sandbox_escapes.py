"""Known Jinja sandbox escapes, written into templates: refused at render time and by
`aftersale rules check`, with nothing executed and no object's repr in the mail or the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main
from app.mail.templates import TemplateError, TemplateRenderer

# Each is a way out of the sandbox or a way to read the process's internals.
ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ customer|attr('__class__') }}",
    "{{ customer|attr('__init__')|attr('__globals__') }}",
    "{{ '{0.__class__}'.format(customer) }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(customer) }}",
    "{{ '{c.__class__}'.format_map({'c': customer}) }}",
    "{{ ''|attr('format_map')({'c': customer}) ~ '{c.__class__}'.format_map({'c': customer}) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ request.application.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ namespace.__init__ }}",
    "{{ range.__globals__ }}",
    "{{ customer.__dict__ }}",
    "{{ items.append(1) }}",
    "{{ customer.update({'first_name': 'x'}) }}",
    "{{ items|map(attribute='__class__')|list }}",
    "{{ items|groupby('__class__') }}",
    # Printing a function, method or bare object would put its repr (memory address) in mail.
    "{{ lipsum }}",
    "{{ cycler(1, 2) }}",
    "{{ customer.keys }}",
    "{{ ''.join }}",
]

# What a leaked Python object looks like in text.
REPR = re.compile(
    r"<(class|function|built-in|bound method|module)\b|\bat 0x[0-9a-f]+|__globals__\s*[:=]"
)


def templates_with(root: Path, expression: str) -> TemplateRenderer:
    folder = root / "escape" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Hi {{ customer.first_name }}")
    (folder / "body.html").write_text(f"<p>Hello</p>\n<p>{expression}</p>\n")
    return TemplateRenderer(root, default_locale="en")


@pytest.mark.parametrize("expression", ESCAPES)
def test_renderer_refuses_escape(tmp_path: Path, expression: str) -> None:
    marker = tmp_path / "pwned"
    renderer = templates_with(tmp_path / "t", expression.replace("{marker}", str(marker)))
    context = {"customer": {"first_name": "Anna"}, "items": [{"name": "Tea"}]}
    with pytest.raises(TemplateError) as raised:
        renderer.render("escape", locale="en", context=context)
    message = str(raised.value)
    assert "escape/en/body.html line 2" in message, message
    assert not REPR.search(message), message
    assert not marker.exists()
    assert context == {"customer": {"first_name": "Anna"}, "items": [{"name": "Tea"}]}


def test_rules_check_reports_every_escape_as_a_template_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, templates, marker = tmp_path / "rules", tmp_path / "templates", tmp_path / "pwned"
    rules.mkdir()
    lines = ["rules:"]
    for number, expression in enumerate(ESCAPES):
        folder = templates / f"escape-{number}" / "en"
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text("Hi")
        (folder / "body.html").write_text(f"<p>{expression.replace('{marker}', str(marker))}</p>")
        lines += [
            f"  - id: escape-{number}",
            "    when: {event: order.created}",
            f"    template: escape-{number}",
        ]
    (rules / "escapes.yaml").write_text("\n".join(lines) + "\n")
    code = main(["rules", "check", str(rules), "--templates", str(templates)])
    out = capsys.readouterr().out
    assert code == 1
    reported = out.splitlines()
    assert len(reported) == len(ESCAPES), out
    for number, line in enumerate(reported):
        # Each at its rule's `template:` line, named and explained.
        assert line.startswith(f"{rules / 'escapes.yaml'}:{3 * number + 4}:15: "), line
        assert f"template 'escape-{number}' (en) does not render" in line, line
        assert f"escape-{number}/en/body.html line 1" in line, line
    assert not REPR.search(out), out
    assert not marker.exists()


def test_what_the_sandbox_must_still_allow(tmp_path: Path) -> None:
    """The hardening keeps ordinary templates working, `order.items` included (it is a dict
    key, not the dict's method)."""
    renderer = templates_with(
        tmp_path,
        "{% set rows = namespace(n=0) %}{% for item in order.items %}{% set rows.n = rows.n + 1 %}"
        "{{ loop.cycle('odd', 'even') }}:{{ item.name|upper }} {% endfor %}"
        "{{ rows.n }} {{ order.items|length }} {{ items|map(attribute='name')|join(', ') }} "
        "{{ '{0} & {1}'.format(customer.first_name, 'co') }} {{ range(2)|list }} "
        "{{ customer.get('last_name', 'none') }} {{ dict(a=1) }}",
    )
    items = [{"name": "Tea"}, {"name": "Mug"}]
    rendered = renderer.render(
        "escape",
        locale="en",
        context={"customer": {"first_name": "Anna"}, "order": {"items": items}, "items": items},
    )
    assert "odd:TEA even:MUG 2 2 Tea, Mug Anna &amp; co [0, 1] none {'a': 1}" in (rendered.html)

"""Every shipped template earns its click, in each locale: rendered as the dispatcher renders
it (through the preview, with the sample orders' catalog data and the shop's settings of
`sent_samples`), before tracking rewrites the links. And without any of that data, no
template makes an empty or "None" link."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from app.config import ROOT, Settings
from app.mail.templates import TemplateRenderer
from app.preview.service import ComposedEmail, compose_preview
from tests.mail.sent_samples import (
    ORDERS,
    PRODUCT_IMAGES,
    SHOP,
    SHOP_ADDRESSES,
    Sample,
    _order_event,
    locale_settings,
    shipped_samples,
)

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SAMPLES = shipped_samples()
STOREFRONT = "https://shop.example.com"
RESTOCK = {"diapers-restock", "diapers-restock-nudge", "cartridges-restock"}


class Links(HTMLParser):
    """Each link's href and visible words, and each picture's source and alt text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.images: list[tuple[str, str]] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a":
            self.links.append((values.get("href", ""), ""))
            self._open.append([])
        elif tag == "img":
            self.images.append((values.get("src", ""), values.get("alt", "")))

    def handle_data(self, data: str) -> None:
        for words in self._open:
            words.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            words = " ".join("".join(self._open.pop()).split())
            index = max(i for i, (_, text) in enumerate(self.links) if text == "")
            self.links[index] = (self.links[index][0], words)

    @property
    def hrefs(self) -> list[str]:
        return [href for href, _ in self.links]


def render(
    sample: Sample, settings: Settings | None = None, *, catalog: bool = True
) -> ComposedEmail:
    settings = settings or locale_settings(sample.locale)
    return compose_preview(
        settings=settings,
        renderer=TemplateRenderer(settings.templates_dir, default_locale=settings.default_locale),
        template=sample.template,
        event=_order_event(sample, now=NOW),
        shop=SHOP,
        rule=sample.rule,
        locale=sample.locale,
        now=NOW,
        catalog=sample.catalog if catalog else None,
    )


def read(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def only(template: str) -> list[Sample]:
    return [sample for sample in SAMPLES if sample.template == template]


@pytest.mark.parametrize(
    "sample",
    [sample for sample in SAMPLES if sample.template in RESTOCK],
    ids=lambda s: s.name,
)
def test_restock_items_with_picture_name_and_a_reorder_button(sample: Sample) -> None:
    email = render(sample)
    links = read(email.html)
    label = "Reorder" if sample.locale == "en" else "Заказать снова"
    for item in (item for item in ORDERS[sample.template] if item.shown):
        handle = item.sku.lower()
        entry = sample.catalog[(None, None, item.sku)]
        # The cart permalink of the item's variant, with the quantity bought.
        reorder = f"{STOREFRONT}/cart/{entry.variant_id}:{item.quantity}"
        assert (reorder, label) in links.links, links.links
        assert (f"{PRODUCT_IMAGES}{handle}.jpg", item.name[sample.locale]) in links.images
        assert (f"{STOREFRONT}/products/{handle}", item.name[sample.locale]) in links.links
        assert f"{label}: {reorder}" in email.text
    # Items outside the rule's filter are not offered.
    for item in (item for item in ORDERS[sample.template] if not item.shown):
        assert item.name[sample.locale] not in email.html


@pytest.mark.parametrize("sample", only("thank-you"), ids=lambda s: s.name)
def test_thank_you_has_the_number_a_link_to_the_shop_and_care_tips(sample: Sample) -> None:
    email = render(sample)
    links = read(email.html)
    shop_label = "Visit our shop" if sample.locale == "en" else "Перейти в магазин"
    assert (STOREFRONT, shop_label) in links.links
    assert STOREFRONT in email.text
    assert ("#100482" if sample.locale == "en" else "№100482") in email.html
    tips = "A few tips for when it arrives" if sample.locale == "en" else "Несколько советов"
    assert tips in email.html and tips in email.text
    # Each item links to its page; transactional mail has no postal address footer.
    for item in ORDERS["thank-you"]:
        assert (f"{STOREFRONT}/products/{item.sku.lower()}", item.name[sample.locale]) in (
            links.links
        )
    assert SHOP_ADDRESSES[sample.locale] not in email.html


@pytest.mark.parametrize("sample", only("delivery-follow-up"), ids=lambda s: s.name)
def test_delivery_follow_up_has_the_order_and_one_clear_question(sample: Sample) -> None:
    email = render(sample)
    visible = re.sub(r"<[^>]+>", " ", email.html.split("<body", 1)[1])
    visible = re.sub(r"<!--.*?-->", "", visible, flags=re.S)
    assert ("#100482" if sample.locale == "en" else "№100482") in visible
    # One question, and its eleven one-click answers.
    assert visible.count("?") == 1
    answers = [href for href in read(email.html).hrefs if "/s/" in href]
    assert len(answers) == 11


@pytest.mark.parametrize("sample", only("birthday"), ids=lambda s: s.name)
def test_birthday_has_the_coupon_and_a_link_to_the_shop(sample: Sample) -> None:
    email = render(sample)
    shop_label = "Visit our shop" if sample.locale == "en" else "Перейти в магазин"
    assert (STOREFRONT, shop_label) in read(email.html).links
    code = re.search(r"letter-spacing:2px[^>]*>([A-Z0-9-]+)<", email.html)
    assert code is not None and code.group(1) in email.text


@pytest.mark.parametrize("sample", only("school-desk"), ids=lambda s: s.name)
def test_school_desk_links_to_the_category(sample: Sample) -> None:
    email = render(sample)
    category = f"{STOREFRONT}/collections/school-desks"  # the rule's links.category
    assert category in read(email.html).hrefs
    assert category in email.text


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_marketing_mail_carries_the_postal_address(sample: Sample) -> None:
    email = render(sample)
    address = SHOP_ADDRESSES[sample.locale]
    if sample.rule.kind == "marketing":
        assert address in email.html and address in email.text
    else:
        assert address not in email.html and address not in email.text


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_without_shop_url_or_catalog_no_link_is_broken(sample: Sample) -> None:
    bare = Settings(
        env="development",
        rules_dir=ROOT / "rules",
        templates_dir=ROOT / "templates" / "email",
        _env_file=None,  # type: ignore[call-arg]
    )
    email = render(sample, bare, catalog=False)
    for href in read(email.html).hrefs:
        assert href.startswith(("https://", "http://", "mailto:")), href
    assert "None" not in email.html and "None" not in email.text
    assert PRODUCT_IMAGES not in email.html

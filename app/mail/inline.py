"""Copy a rendered email's <style> rules into style attributes.

Several mail clients (Gmail's apps with non-Google accounts, older Outlook, many webmail
clients) drop or ignore <style>, so rules only reach the reader as inline styles. The
<style> element stays as well: media queries and :hover cannot be inlined, and the
clients that honour them also read <style>.
"""

from __future__ import annotations

import css_inline

# Templates come from the shop operator: nothing they reference is ever fetched (a
# <link rel="stylesheet"> to a URL or a local file is dropped, not loaded), so rendering
# cannot reach the network or read files.
_INLINER = css_inline.CSSInliner(
    inline_style_tags=True,
    keep_style_tags=True,
    keep_link_tags=False,
    load_remote_stylesheets=False,
)


class InlineCssError(ValueError):
    """The HTML could not be processed; the message says why."""


def inline_css(html: str) -> str:
    """`html` with every <style> rule that applies to an element in its style attribute.

    An element's own style attribute wins over a stylesheet rule, as in a browser.
    """
    try:
        inlined: str = _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise InlineCssError(f"CSS inlining failed: {exc}") from exc
    return inlined

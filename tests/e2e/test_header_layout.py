"""The site header on a phone and on a desktop, signed in or not, in each language: every main-nav
link is on the screen, clear of the account links, the language switch and the other nav links,
and it is the element a tap (or click) at its centre lands on; the page is no wider than the screen.

The header once put the nav in a sideways-scrolling strip beside the account links: at 390 px
the third tab sat under the user's name and "Log out" and could not be tapped. On a desktop the
same strip, squeezed between the brand and a signed-in user's account links, hid its last tabs
with no scrollbar or hint ("Verifiable ledger" and "Developers" at 1280 px in English)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server, _trustpay_command

pytestmark = pytest.mark.e2e

MOBILE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "harbour lamp 58 cedar"
LANGS = {"zh-Hans": "zh-CN", "zh-Hant": "zh-TW", "en": "en-GB"}


@dataclass(frozen=True)
class Person:
    who: str
    email: str
    name: str
    page: str  # where they land; every page has the same header
    nav: tuple[str, ...]  # hrefs their main nav must offer


PEOPLE = [
    Person("visitor", "", "", "/", ("/#how", "/#ledger", "/#wallet", "/docs")),  # not signed in
    Person("wallet", "header.wallet.e2e@example.com", "Wang Xiaoming", "/wallet",
           ("/wallet", "/purchases", "/#how", "/#ledger", "/docs")),
    Person("merchant", "header.merchant.e2e@example.com", "Jingdezhen Porcelain Studio", "/merchant",
           ("/wallet", "/purchases", "/merchant", "/#how", "/#ledger", "/docs")),
    Person("ops", "header.ops.e2e@example.com", "Ops Duty Desk", "/ops/disputes",
           ("/ops/disputes", "/ops/reconciliation", "/#how", "/#ledger", "/docs")),
]

# Each box the header shows, with what it is, in screen coordinates (the page is scrolled
# to the top first).
HEADER_BOXES_JS = """() => {
  const box = (el, kind) => {
    const r = el.getBoundingClientRect();
    return {kind, text: el.textContent.trim().replace(/\\s+/g, ' '),
            href: el.getAttribute('href'), left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  };
  const header = document.querySelector('.site-header');
  const all = (sel, kind) => [...header.querySelectorAll(sel)].map(el => box(el, kind));
  return {
    nav: all('.site-nav a', 'nav'),
    others: [...all('.brand', 'brand'), ...all('.account-nav a, .account-nav button', 'account'),
             ...all('.lang-switch a', 'language')],
    navBox: box(header.querySelector('.site-nav'), 'nav strip'),
    header: box(header, 'header'),
    docWidth: document.documentElement.scrollWidth,
    viewWidth: document.documentElement.clientWidth,
  };
}"""

# The element a finger lands on at a link's centre must be that link (not a neighbour drawn
# over it, not a fade mask, not nothing because the link is scrolled away).
TAP_HITS_JS = """() => [...document.querySelectorAll('.site-header .site-nav a')].map(a => {
  const r = a.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return {href: a.getAttribute('href'), hit: !!hit && a.contains(hit),
          what: hit ? hit.outerHTML.slice(0, 80) : null};
})"""


def _visible(box: dict[str, Any]) -> bool:
    return bool(box["right"] > box["left"] and box["bottom"] > box["top"])


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["left"] < b["right"] and b["left"] < a["right"]
                and a["top"] < b["bottom"] and b["top"] < a["bottom"])


def _label(box: dict[str, Any]) -> str:
    return (f"{box['kind']} {box['text']!r} [{box['left']:.0f}..{box['right']:.0f} x "
            f"{box['top']:.0f}..{box['bottom']:.0f}]")


def assert_header_fits(page: Page, person: Person) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    boxes = page.evaluate(HEADER_BOXES_JS)
    view = boxes["viewWidth"]
    assert boxes["docWidth"] <= view, f"the page is {boxes['docWidth'] - view}px wider than the screen"
    nav = boxes["nav"]
    assert sorted(b["href"] for b in nav) == sorted(person.nav)
    others = [b for b in boxes["others"] if _visible(b)]
    assert {b["kind"] for b in others} == {"brand", "account", "language"}
    problems: list[str] = []
    for i, link in enumerate(nav):
        if not _visible(link):
            problems.append(f"{_label(link)} is not shown")
            continue
        if link["left"] < 0 or link["right"] > view or link["top"] < 0:
            problems.append(f"{_label(link)} is outside the {view}px screen")
        if link["bottom"] > boxes["header"]["bottom"]:
            problems.append(f"{_label(link)} hangs below the header")
        strip = boxes["navBox"]
        if link["left"] < strip["left"] or link["right"] > strip["right"]:
            problems.append(f"{_label(link)} is clipped by {_label(strip)}")
        if link["bottom"] - link["top"] < 24:
            problems.append(f"{_label(link)} is too short to tap")
        problems += [f"{_label(link)} overlaps {_label(other)}"
                     for other in [*others, *nav[i + 1:]] if _visible(other) and _overlap(link, other)]
    problems += [f"{_label(a)} overlaps {_label(b)}" for i, a in enumerate(others) for b in others[i + 1:]
                 if _overlap(a, b)]
    problems += [f"a tap on {t['href']} lands on {t['what']}" for t in page.evaluate(TAP_HITS_JS)
                 if not t["hit"]]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def people(server: Server) -> list[Person]:
    for person in PEOPLE:
        if not person.email:
            continue
        if person.who == "ops":
            made = subprocess.run(
                [*_trustpay_command(), "ops", "create-user", "--email", person.email,
                 "--password", PASSWORD, "--name", person.name],
                env=server.env, cwd=server.tmp, capture_output=True, text=True, timeout=120)
            assert made.returncode == 0, made.stdout + made.stderr
        else:
            kind = "merchant" if person.who == "merchant" else "personal"
            r = httpx.post(server.url("/v1/users"), timeout=30,
                           json={"email": person.email, "password": PASSWORD, "name": person.name, "kind": kind})
            assert r.status_code == 201, r.text
    return PEOPLE


def phone_page(browser: Browser, opened: list[BrowserContext], server: Server, person: Person,
               lang: str, viewport: ViewportSize = MOBILE, *, phone: bool = True) -> Page:
    """``person``'s page on a phone (or, with ``phone=False``, a desktop browser) in ``lang``,
    signed in unless they are a visitor."""
    ctx = browser.new_context(viewport=viewport, locale=LANGS[lang], is_mobile=phone, has_touch=phone,
                              device_scale_factor=2 if phone else 1)
    opened.append(ctx)
    page = ctx.new_page()
    if person.email:
        page.goto(server.url("/login"))
        page.fill("input[name=email]", person.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("form.form button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/login"))
    response = page.goto(server.url(person.page))
    assert response is not None and response.status == 200
    assert page.get_attribute("html", "lang") == lang
    expect(page.get_by_test_id("account-name" if person.email else "login-link")).to_be_visible()
    return page


@pytest.mark.parametrize("lang", list(LANGS))
@pytest.mark.parametrize("who", [p.who for p in PEOPLE])
def test_every_nav_link_is_on_screen_and_tappable_on_a_phone(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: Path,
    people: list[Person], who: str, lang: str,
) -> None:
    (person,) = [p for p in people if p.who == who]
    page = phone_page(browser, contexts, server, person, lang)
    assert_header_fits(page, person)
    page.screenshot(path=str(screenshots_dir / f"header-{who}-{lang}-mobile.png"))


@pytest.mark.parametrize("width", [320, 600, 719, 800, 979])
def test_merchant_header_from_small_phone_to_tablet(
    server: Server, browser: Browser, contexts: list[BrowserContext], people: list[Person], width: int,
) -> None:
    """Below the one-row desktop header, at a small phone's width and around the tablet step."""
    (merchant,) = [p for p in people if p.who == "merchant"]
    page = phone_page(browser, contexts, server, merchant, "en", {"width": width, "height": 900})
    assert_header_fits(page, merchant)


@pytest.mark.parametrize("lang", list(LANGS))
@pytest.mark.parametrize("who", [p.who for p in PEOPLE])
@pytest.mark.parametrize("width", [1280, 1080, 980])
def test_every_nav_link_is_on_screen_and_clickable_on_a_desktop(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: Path,
    people: list[Person], width: int, who: str, lang: str,
) -> None:
    """A common laptop width, the visitor's one-row step and the narrowest desktop width: a
    signed-in user's nav (up to six tabs beside a name, "Security" and "Log out") must not lose
    tabs, nor may the visitor's (at 980 px English lost "Developers")."""
    (person,) = [p for p in people if p.who == who]
    page = phone_page(browser, contexts, server, person, lang, {"width": width, "height": 800}, phone=False)
    assert_header_fits(page, person)
    if width != 1080:
        suffix = "" if width == 1280 else f"-{width}"
        page.screenshot(path=str(screenshots_dir / f"header-{who}-{lang}-desktop{suffix}.png"))


# The name link's own width against the width its text needs (cut short with an ellipsis when less).
NAME_JS = """() => {
  const el = document.querySelector('[data-testid=account-name]');
  return {text: el.textContent.trim(), shown: el.clientWidth, needed: el.scrollWidth,
          right: el.getBoundingClientRect().right, view: document.documentElement.clientWidth};
}"""
LONG_NAME = Person("long", "header.longname.e2e@example.com",
                   "Guangzhou Pearl River Tea, Silk and Porcelain Export Trading Company", "/wallet",
                   ("/wallet", "/purchases", "/#how", "/#ledger", "/docs"))


@pytest.fixture(scope="module")
def long_name(server: Server) -> Person:
    r = httpx.post(server.url("/v1/users"), timeout=30,
                   json={"email": LONG_NAME.email, "password": PASSWORD, "name": LONG_NAME.name})
    assert r.status_code == 201, r.text
    return LONG_NAME


@pytest.mark.parametrize("lang", list(LANGS))
@pytest.mark.parametrize("width", [1024, 1280])
def test_a_signed_in_name_has_room_on_a_wide_screen(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: Path,
    people: list[Person], long_name: Person, width: int, lang: str,
) -> None:
    """At 1280 px "Alice (buyer)" was cut to "Alice (buy…" (the name had 8em whatever the
    screen): names of ordinary length are shown in full on a wide screen, and a very long one
    is still cut short rather than pushing the header past the screen's edge."""
    for person in [p for p in people if p.who in ("wallet", "merchant")]:
        page = phone_page(browser, contexts, server, person, lang, {"width": width, "height": 800}, phone=False)
        assert_header_fits(page, person)
        name = page.evaluate(NAME_JS)
        assert name["text"] == person.name
        assert name["needed"] <= name["shown"], f"{person.name!r} is cut short at {width}px: {name}"
    page = phone_page(browser, contexts, server, long_name, lang, {"width": width, "height": 800}, phone=False)
    assert_header_fits(page, long_name)
    name = page.evaluate(NAME_JS)
    assert name["needed"] > name["shown"] and name["right"] <= name["view"], name
    page.screenshot(path=str(screenshots_dir / f"header-long-name-{lang}-desktop-{width}.png"))


@pytest.mark.parametrize("lang", list(LANGS))
def test_a_very_long_name_is_cut_short_on_a_phone(
    server: Server, browser: Browser, contexts: list[BrowserContext], long_name: Person, lang: str,
) -> None:
    page = phone_page(browser, contexts, server, long_name, lang)
    assert_header_fits(page, long_name)
    name = page.evaluate(NAME_JS)
    assert name["right"] <= name["view"], name

"""The landing page's wallet section, in each language: everything in it is available, and
each feature links to its page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.identity_support import Env, make_env


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def wallet_section(env: Env, lang: str) -> str:
    r = env.client.get("/", params={"lang": lang})
    assert r.status_code == 200
    match = re.search(r'<section id="wallet".*?</section>', r.text, re.S)
    assert match is not None
    return match.group(0)


@pytest.mark.parametrize(("lang", "gone", "available"), [
    ("en", ("Coming soon", "coming next"), "Available now"),
    ("zh-Hans", ("即将推出",), "现已上线"),
    ("zh-Hant", ("即將推出",), "現已上線"),
])
def test_wallet_section_says_available_and_links_each_feature(env: Env, lang: str, gone: tuple[str, ...],
                                                              available: str) -> None:
    section = wallet_section(env, lang)
    for text in gone:
        assert text not in section
    assert section.count(available) == 4
    links = re.findall(r'<a class="text-link" href="([^"]+)">', section)
    assert sorted(links) == ["/security", "/wallet", "/wallet/statement", "/wallet/transfer"]
    for href in links:  # each leads somewhere real: the page, or log-in first
        r = env.client.get(href, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), href

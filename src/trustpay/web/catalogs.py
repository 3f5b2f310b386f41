"""Keep the message catalogs in step with the templates.

``python -m trustpay.web.catalogs`` extracts every translatable string from
the templates (and from ``_()``/``gettext()`` calls in this package's Python),
adds new ones to each ``.po`` file with an empty translation, and drops the
ones no longer used. Translators then fill in the blanks; the
i18n tests fail until every message is translated in every language.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po
from jinja2.ext import babel_extract

from trustpay.web.i18n import BABEL_LOCALES, LANGUAGES, po_path
from trustpay.web.templating import TEMPLATES_DIR

PACKAGE_DIR = Path(__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
# The same switches as the runtime environment, so msgids match exactly.
JINJA_OPTIONS = {"trimmed": "true", "newstyle_gettext": "true", "silent": "false",
                 "trim_blocks": "true", "lstrip_blocks": "true"}

MessageId = str | tuple[str, str]


def _sources() -> Iterator[tuple[Path, Any, dict[str, str]]]:
    for path in sorted(TEMPLATES_DIR.rglob("*.html")):
        yield path, babel_extract, JINJA_OPTIONS
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        yield path, "python", {}


def extract() -> Catalog:
    """Every message the web pages can ask for, with where it is used."""
    catalog = Catalog(project="TrustPay", fuzzy=False)
    for path, method, options in _sources():
        for lineno, message, comments, context in extract_from_file(
            method, str(path), keywords=KEYWORDS, options=options, strip_comment_tags=True
        ):
            where = (str(path.relative_to(PACKAGE_DIR)), lineno)
            catalog.add(message, locations=[where], auto_comments=comments, context=context)
    return catalog


def message_ids(catalog: Catalog) -> set[MessageId]:
    ids: set[MessageId] = set()
    for message in catalog:
        if not message.id:
            continue  # the header
        ids.add(message.id if isinstance(message.id, str) else (message.id[0], message.id[1]))
    return ids


def update() -> list[Path]:
    """Merge freshly extracted messages into every ``.po`` file; return the files written.

    A catalog whose messages are already the extracted ones is left untouched.
    """
    template = extract()
    wanted = message_ids(template)
    written = []
    for lang in LANGUAGES:
        path = po_path(lang)
        with path.open("rb") as f:
            catalog = read_po(f, locale=BABEL_LOCALES[lang])
        if message_ids(catalog) == wanted:
            continue
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in update():
        print(f"updated {written_path}")

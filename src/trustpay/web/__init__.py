"""Server-rendered web pages: Jinja2 templates, HTMX, Babel catalogs (zh-Hans, zh-Hant, en)."""

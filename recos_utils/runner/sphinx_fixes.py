"""A small Sphinx extension for the built book (loaded from ``_config.yml``,
``sphinx.extra_extensions``); it serves the book as a whole, no chapter.

One fix: with Sphinx 7.4, an inline script that an extension adds once the builder exists
(sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) lands twice
on every page, once with file name ``None`` and once with ``''``. The second ``const``
declaration is a JavaScript ``SyntaxError`` in the reader's console. Here each page's
script list keeps the first of any scripts that differ only in that way.
"""
from __future__ import annotations

__all__ = ["dedupe_scripts", "setup"]


def _key(js) -> tuple:
    attrs = getattr(js, "attributes", {}) or {}
    return (getattr(js, "filename", str(js)) or "", getattr(js, "priority", 500),
            tuple(sorted((k, str(v)) for k, v in attrs.items())))


def dedupe_scripts(scripts: list) -> list:
    """``scripts`` without repeats (file name ``None`` and ``''`` count as the same), in order."""
    seen, out = set(), []
    for js in scripts:
        k = _key(js)
        if k not in seen:
            seen.add(k)
            out.append(js)
    return out


def _on_page(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = dedupe_scripts(scripts)


def setup(app):
    app.connect("html-page-context", _on_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

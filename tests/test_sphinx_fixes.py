"""recos_utils.runner.sphinx_fixes: the page's script list loses the inline scripts that Sphinx 7.4
adds twice (file name None and ''), and nothing else."""
from sphinx.builders.html._assets import _JavaScript

from recos_utils.runner.sphinx_fixes import dedupe_scripts


def test_inline_script_added_with_none_and_empty_name_is_kept_once():
    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=body),
               _JavaScript("_static/b.js", **{"async": "async"}), _JavaScript("", body=body)]
    out = dedupe_scripts(scripts)
    assert out == scripts[:3]


def test_different_scripts_and_attributes_are_all_kept():
    scripts = [_JavaScript("", body="var a = 1;"), _JavaScript("", body="var b = 1;"),
               _JavaScript("_static/a.js"), _JavaScript("_static/a.js", defer="defer"),
               _JavaScript("_static/a.js", priority=200)]
    assert dedupe_scripts(scripts) == scripts

"""The runner: ``recos-book run``, its state and progress, the site, the front page, the
explorer export, and the Sphinx and kernel fixes. It reads results files and knows no
chapter's internals (``tests/test_layers.py`` checks it). See ``recos_utils/README.md``.
"""

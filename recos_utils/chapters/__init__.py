"""The chapters' experiments: one module (or a few, with the chapter's prefix) per chapter.

A chapter module imports only the core and modules of its own chapter, never another
chapter or the runner (``tests/test_layers.py`` checks it). See ``recos_utils/README.md``.
"""

"""The core: the paper's mathematics and the reusable machinery of the book.

Knows nothing of chapters or of the runner (``tests/test_layers.py`` checks it). See
``recos_utils/README.md`` for the map.
"""

"""recos_utils: the helpers behind the executable book of the RECOS model of CNNs.

C.-C. Jay Kuo, "Understanding Convolutional Neural Networks with A Mathematical Model",
J. Visual Communication and Image Representation 41 (2016), arXiv:1609.04112.

Three layers, each a subpackage that imports only downward (``README.md`` beside this file
draws the map; ``tests/test_layers.py`` checks it):

* ``recos_utils.core``: the paper's mathematics and the reusable machinery (data, models,
  the one trainer ``trainer.train_all``, the claims registry, results, plots);
* ``recos_utils.chapters``: one chapter's experiments per ``chN_*`` module;
* ``recos_utils.runner``: ``recos-book run``, the site, the front page, the explorer export.
"""
__version__ = "0.1.0"

"""recos_utils: the helpers behind the executable book of the RECOS model of CNNs.

C.-C. Jay Kuo, "Understanding Convolutional Neural Networks with A Mathematical Model",
J. Visual Communication and Image Representation 41 (2016), arXiv:1609.04112.

One module per concept, each tied to the chapter that introduces it:

========== ==========================================================================
params     validating a chapter's parameters (every chapter)
data       MNIST / Fashion-MNIST as in-memory uint8 tensors; grey-scale reversal (Ch. 2)
models     LeNet-5 with activation and pooling by name (Ch. 1-4)
train      the fast in-memory trainer and ``train_lenet`` (every chapter)
cache      the content-addressed model cache (every chapter)
recos      anchors, patches, rectified correlations, magnitude x cosine (Ch. 1)
results    deterministic results files (every chapter)
plots      the book's figure style (every chapter)
cli        ``recos-book run``: papermill, then Jupyter Book
========== ==========================================================================
"""
__version__ = "0.1.0"

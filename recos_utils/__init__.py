"""recos_utils: the helpers behind the executable book of the RECOS model of CNNs.

C.-C. Jay Kuo, "Understanding Convolutional Neural Networks with A Mathematical Model",
J. Visual Communication and Image Representation 41 (2016), arXiv:1609.04112.

One module per concept, each tied to the chapter that introduces it:

=============== =====================================================================
params          validating a chapter's parameters (every chapter)
data            MNIST / Fashion-MNIST as in-memory uint8 tensors; grey-scale reversal
models          LeNet-5 with activation and pooling by name (Ch. 1-4)
train           the book's recipe: the in-memory trainer ``fit``, ``train_lenet(s)`` (Ch. 1-4)
jobs            devices, thread counts, progress bars, the process pool (``train``)
stacked         many LeNet-5s as one network, for the TReLU sweep (Ch. 2)
cache           the content-addressed model cache (every chapter)
recos           anchors, patches, rectified correlations, magnitude x cosine (Ch. 1)
sign_confusion  sign confusion, grey-scale reversal, paired anchors, ablation (Ch. 2)
sphere          patches on the unit sphere, spherical k-means, anchor matching (Ch. 3)
anchor_training how anchors form; k-means initialisation of conv1 (Ch. 3)
backgrounds     digits on natural backgrounds, the mnist-back-image recipe (Ch. 4)
cascade         one conv layer against two: algebra and clutter response (Ch. 4)
alexnet         AlexNet (ImageNet weights) or the MiniAlexNet fallback; anchors (Ch. 5)
results         deterministic results files (every chapter)
plots           the book's figure style and result tables (every chapter)
pages           the front page "Paper vs this book", from the results files
cli             ``recos-book run``: papermill, then Jupyter Book
kernel_fixes    keeps papermill from hanging on a lost shell-socket wake-up (``cli``)
sphinx_fixes    a small Sphinx extension for the built book
=============== =====================================================================
"""
__version__ = "0.1.0"

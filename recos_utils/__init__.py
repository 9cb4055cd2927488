"""recos_utils: the helpers behind the executable book of the RECOS model of CNNs.

C.-C. Jay Kuo, "Understanding Convolutional Neural Networks with A Mathematical Model",
J. Visual Communication and Image Representation 41 (2016), arXiv:1609.04112.

One module per concept, each tied to the chapter that introduces it:

=============== =====================================================================
params          validating a chapter's parameters (every chapter)
data            MNIST / Fashion-MNIST as in-memory uint8 tensors; grey-scale reversal
models          LeNet-5 with activation and pooling by name (Ch. 1-4)
train           the book's recipe: the in-memory trainer ``fit``, ``train_lenet(s)`` (Ch. 1-4)
jobs            devices, threads, the process pool; ``job``: one train-and-cache key for
                every model kind, with one code hash (every chapter)
stacked         many LeNet-5s as one network, for the TReLU sweep (Ch. 2)
cache           the content-addressed model cache (every chapter)
recos           anchors, patches, rectified correlations, magnitude x cosine (Ch. 1);
                the cascade d = B_L ... B_1 x: stages, hooks, RECOS recomputation (Ch. 5)
sign_confusion  sign confusion, grey-scale reversal, paired anchors (Ch. 2)
ablation        which activation? the ablation and the TReLU sweep (Ch. 2, Sec. 2.8)
sphere          patches on the unit sphere, spherical k-means, anchor matching (Ch. 3);
                mean |cos| and nearest-neighbour cosine of a vector set (Ch. 5)
sphere_null     anchors against random directions: exact E|cos|, layer stats, t-SNE (Ch. 5)
photos          scikit-image's photographs by name, RGB uint8 or grey in [0, 1] (Ch. 2, 4, 5)
anchor_training how anchors form; k-means initialisation of conv1 (Ch. 3)
anchor_summary  Ch. 3's measurements as plain dicts: matching, geometry, formation, init arms
backgrounds     digits on natural backgrounds, the mnist-back-image recipe (Ch. 4)
cascade         one conv layer against two: the two networks and their training (Ch. 4)
cascade_algebra the linearised cascade, anchor-position vectors and their variance (Ch. 4)
bg_accuracy     accuracy on clean and background digits; the gap investigated (Ch. 4)
clutter         where the clutter goes: digit and background units of a layer (Ch. 4)
alexnet         AlexNet (ImageNet weights) or the MiniAlexNet fallback; its inputs (Ch. 5)
alexnet_report  Chapter 5's readings as plain dicts: protocol, layers, rectifiers, reversal
alexnet_figures the figures and tables of Chapter 5
feedforward     Saak and Saab stages, least-squares layers, the FF-designed LeNet-5 (Ch. 6)
ff_runs         Chapter 6's measurements as plain dicts: Saak, Saab, designed vs trained
explorer        the in-browser explorer page: exports Chapter 2's networks (page after Ch. 2)
results         deterministic results files (every chapter)
plots           the book's figure style and result tables (every chapter)
claims          every claim of the paper and its follow-ups, with its one rule (Ch. 2-6)
pages           the front page "Paper vs this book": renders the chapters' verdicts
cli             ``recos-book run``: papermill, then Jupyter Book
run_state       what ``recos-book run`` remembers: which chapter ran on what, incremental runs
run_progress    the terminal progress of ``recos-book run``: cell n of m, training, time left
book_site       the sources staged for Jupyter Book: run banners, build table, buttons
kernel_fixes    keeps papermill from hanging on a lost shell-socket wake-up (``cli``)
sphinx_fixes    a small Sphinx extension for the built book
=============== =====================================================================
"""
__version__ = "0.1.0"

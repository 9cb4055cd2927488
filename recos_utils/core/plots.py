"""One figure style for the whole book, and small figure helpers (every chapter).

A figure function takes data and returns a matplotlib figure; it never trains.
"""
from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["use_style", "COLORS", "image_grid", "unit_circle", "html_table"]

#: Colour-blind-safe palette (Okabe-Ito) used across chapters.
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
          "#000000"]


def use_style() -> None:
    """Apply the book's matplotlib style (call once per chapter)."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (6.4, 3.6),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.25, "axes.prop_cycle": matplotlib.cycler(color=COLORS),
        "font.size": 10, "axes.titlesize": 11, "legend.frameon": False,
        "image.cmap": "gray",
        # opaque figures: black text on a transparent PNG vanishes in the theme's dark mode
        "figure.facecolor": "white", "savefig.facecolor": "white", "savefig.transparent": False,
    })
    _retina()


def _retina() -> None:
    """In a Jupyter kernel, send figures as PNGs of twice the resolution with their display
    size in the output's metadata ("retina"), so that they stay sharp on high-density
    screens at the same size on the page (myst-nb >= 1.1 writes the size into the HTML)."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def image_grid(images, nrow: int, titles=None, cmap: str = "gray", size: float = 0.9,
               vmin=None, vmax=None, symmetric: bool = False, suptitle: str | None = None):
    """Show a stack of 2-D images (N x H x W tensor or array) in a grid; return the figure.

    ``symmetric`` centres the colour map on zero (for filters/anchors, with ``cmap='RdBu_r'``).
    """
    imgs = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n = len(imgs)
    ncol = int(np.ceil(n / nrow))
    fig, axes = plt.subplots(nrow, ncol, figsize=(size * ncol, size * nrow + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        lo, hi = vmin, vmax
        if symmetric:
            m = float(np.abs(imgs[i]).max()) or 1.0
            lo, hi = -m, m
        ax.imshow(imgs[i], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8, pad=2)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(pad=0.2, w_pad=0.5, h_pad=0.5)
    return fig


def unit_circle(x, anchors, labels=None, ax=None):
    """The paper's Fig. 3: an input x and anchors on the unit circle, with correlations.

    Anchors at acute angles (positive correlation) are drawn solid; obtuse ones, whose
    negative correlation the rectifier blocks, dashed.
    """
    x = np.asarray(x, dtype=float)
    a = np.asarray(anchors, dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="0.7", lw=1)
    ax.annotate("", xy=x, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="black", lw=2))
    ax.text(*(1.12 * x), "x", ha="center", va="center", fontsize=12, weight="bold")
    for k, ak in enumerate(a):
        c = float(ak @ x)
        style = "-" if c > 0 else "--"
        col = COLORS[k % len(COLORS)]
        ax.annotate("", xy=ak, xytext=(0, 0),
                    arrowprops=dict(arrowstyle="-|>", color=col, lw=1.6, linestyle=style))
        name = labels[k] if labels else f"$a_{k + 1}$"
        ax.text(*(1.38 * ak), f"{name}\ncos={c:+.2f}\nRec={max(c, 0):.2f}", ha="center",
                va="center", fontsize=8, color=col)
    ax.set_aspect("equal")
    ax.set_xlim(-1.75, 1.75)
    ax.set_ylim(-1.75, 1.75)
    ax.set_axis_off()
    return ax.figure


def html_table(header: list, rows: list[list]) -> str:
    """A small HTML table of a chapter's results (Chapters 2 and 4), cells escaped.

    For ``IPython.display.HTML``: the table is built from the numbers the cell computed, so
    it is rendered as an output rather than typed as Markdown.
    """
    from html import escape

    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

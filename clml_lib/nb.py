"""One call at the top of every notebook: seeds, print options, plot settings, warnings.

Keeps notebook outputs deterministic so that nbval can compare them (see
``tests/nbval_sanitize.cfg`` for what is still sanitised).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .seed import seed_everything
from .threads import pin_threads


def setup_notebook(seed: int = 0, threads: int = 2, plots: bool = True) -> None:
    """Seed everything, fix print options and matplotlib defaults, silence known noise.

    Args:
        seed: global seed passed to :func:`clml_lib.seed.seed_everything`.
        threads: torch intra-op threads (2 matches the CI machine; fixes float sums).
        plots: also apply :func:`setup_plots` now; ``False`` leaves matplotlib unimported (about
            1 s) until a later cell calls :func:`setup_plots` before its first figure.
    """
    seed_everything(seed, deterministic=True)
    pin_threads(threads, environment=False)
    torch.set_printoptions(precision=4, sci_mode=False, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    if plots:
        setup_plots()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")


#: dots per inch of the notebooks' figures, shown inline and saved: the book shrinks a figure
#: wider than its text column, and at this resolution its small text stays sharp
FIGURE_DPI = 120


def setup_plots() -> None:
    """Matplotlib defaults of every notebook (PNG figures at :data:`FIGURE_DPI`, inline under
    IPython)."""
    import matplotlib

    matplotlib.rcParams.update(
        {"figure.figsize": (6.0, 4.0), "figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI,
         "font.size": 10}
    )
    try:  # inside IPython: PNG figures (SVG breaks nbval), no retina doubling
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            ip.run_line_magic("matplotlib", "inline")
            ip.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
    except ImportError:  # pragma: no cover - IPython is a dependency
        pass

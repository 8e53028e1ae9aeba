"""Shared pytest configuration (at the root so that it also applies to notebooks/ under nbval).

Kept minimal and generic: every test file in the project shares it, so it holds no fixtures
(put those in the test file or a helper module).
"""


def pytest_collectstart(collector):
    """nbval: also skip comparing stderr (warnings vary between library versions), HTML reprs
    (pandas/widget markup; their ``text/plain`` twin is still compared) and JavaScript.

    Runs for every collector; only nbval's notebook collectors carry ``skip_compare``.
    """
    path = str(getattr(collector, "path", "") or "")
    if path.endswith(".ipynb") and hasattr(collector, "skip_compare"):
        collector.skip_compare += ("stderr", "text/html", "application/javascript")

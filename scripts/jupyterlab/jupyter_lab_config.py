"""JupyterLab for the clml course: the configuration ``bash scripts/lab.sh`` starts it with.

* the server's root is ``notebooks/`` (the chapters, their ``.py`` twins, the solutions): the
  file browser opens on the course, and the library's own modules stay out of it;
* new notebooks get the project's kernel (``python3``: the ``.venv`` interpreter, registered by
  ``scripts/env.sh``), which imports ``clml_lib`` from the editable install;
* ``notebooks/NN_name.py`` open as notebooks: jupytext's contents manager (its server extension,
  enabled by the jupytext package itself) reads the pairing ``formats = "ipynb,py:percent"`` of
  ``notebooks/jupytext.toml``, and ``settings/overrides.json`` makes "Jupytext Notebook" the
  default viewer of Python files, so a double click opens the notebook;
* offline: no news feed, no update check, the read-only extension manager (no PyPI queries),
  the server on 127.0.0.1 only.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

c = get_config()  # noqa: F821  (defined by traitlets when it loads this file)

c.ServerApp.root_dir = str(ROOT / "notebooks")
c.ServerApp.ip = "127.0.0.1"
# containers and CI run as root; the server listens on 127.0.0.1 only, behind its token
c.ServerApp.allow_root = True
c.LabApp.app_settings_dir = str(HERE / "settings")  # overrides.json: defaults of the UI
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
c.MappingKernelManager.default_kernel_name = "python3"

"""ibtui: watch the information bottleneck at work. From Python: `ibtui.run(scenario, set={...})` trains and
returns a Run, `ibtui.load("run.csv")` reads an export (see ibtui/api.py). Both are imported on first use, so
`import ibtui` (and every `import ibtui.x`) costs nothing and never imports torch."""
from ibtui.version import __version__

__all__ = ["load", "run", "__version__"]


def __getattr__(name: str):
    if name in ("load", "run"):
        from ibtui import api

        return getattr(api, name)
    raise AttributeError(f"module 'ibtui' has no attribute {name!r}")

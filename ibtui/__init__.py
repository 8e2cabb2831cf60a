"""ibtui: watch the information bottleneck at work. From Python: `ibtui.run(scenario, set={...})` trains and
returns a Run, `ibtui.load("run.csv")` reads an export (see ibtui/api.py), `ibtui.watch(model, …)` measures
your own model in your own loop (ibtui/monitor.py). All three are imported on first use, so
`import ibtui` (and every `import ibtui.x`) costs nothing and never imports torch."""
from ibtui.version import __version__

__all__ = ["load", "run", "watch", "__version__"]


def __getattr__(name: str):
    if name in ("load", "run"):
        from ibtui import api

        return getattr(api, name)
    if name == "watch":  # your own model in your own training loop (ibtui/monitor.py)
        from ibtui.monitor import watch

        return watch
    raise AttributeError(f"module 'ibtui' has no attribute {name!r}")

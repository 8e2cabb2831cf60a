"""The package version, in a base module: the sidecar records it, and `import ibtui` re-exports it."""
__version__ = "0.1.0"  # keep equal to pyproject.toml's version

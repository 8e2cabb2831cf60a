"""The errors ibtui reports to a user as one sentence and exit code 2 (never a traceback).

Every layer raises a subclass of `IbtuiError` with a message that names the file, the key and the fix;
the command line catches the base class once.
"""
from __future__ import annotations


class IbtuiError(Exception):
    """Bad input or an impossible request, explained in one sentence (the exception's message)."""


class ScenarioError(IbtuiError):
    """A scenario file or a `--set` override that cannot be run as written."""


class DataMissingError(IbtuiError):
    """A data set the scenario needs is not where the scenario (or --data-dir) says."""


class DataFormatError(DataMissingError):
    """A data file exists but is not what its name says (truncated, corrupt, or another format).

    A subclass of DataMissingError: for the user both mean "point ibtui at a good copy of the data".
    """


class ExportError(IbtuiError):
    """An export or figure target that cannot be written, or would destroy an earlier run."""

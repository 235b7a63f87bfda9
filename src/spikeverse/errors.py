"""User-facing errors.

Anything the user can get wrong (an unknown env id, an impossible hyperparameter, a missing,
truncated or foreign checkpoint, a mismatched architecture, NaN weights) raises
:class:`SpikeverseError` with a one-line message. The CLI prints it on stderr and exits with 2.
"""


class SpikeverseError(Exception):
    """An error caused by user input; its message is one line, meant to be shown as is."""


def require_all(checks) -> None:
    """Raise :class:`SpikeverseError` with the message of the first ``(ok, message)`` pair that
    is not ok (configs validate their fields this way)."""
    for ok, message in checks:
        if not ok:
            raise SpikeverseError(message)

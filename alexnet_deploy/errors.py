"""The one user-error type, and its usage-error flavour.

A user error is something the person running the tool can fix: a missing file, a bad flag, a
checkpoint of the wrong shape. The CLI turns it into ``Error: ...`` plus a hint on stderr and a
non-zero exit code, without a traceback. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class AlexnetDeployError(Exception):
    """A failure the user can act on. ``hint`` says how to fix it."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class UsageError(AlexnetDeployError):
    """The command line itself is wrong: an out-of-range option, a bad combination."""

    exit_code = EXIT_USAGE


class ToleranceError(AlexnetDeployError):
    """An artifact's outputs differ from the reference beyond the allowed tolerance."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying what the command had done when it came ("stored 2 of 4 (...); the rest
    were not stored"): the CLI prints it in place of its general line about files."""

    def __init__(self, done: str) -> None:
        super().__init__(done)
        self.done = done

"""How a stage says what it is doing: one callable taking a short line ("calibrating INT8"),
declared once and imported by every stage and by the orchestration layer above them. The CLI
passes a spinner's or a log's ``update``; a script or a test passes nothing and hears nothing."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def silent(_message: str) -> None:
    """The default :data:`Progress`: say nothing."""

"""A URL's password kept out of everything the tool writes or prints: messages name a store as
``postgresql://alex:***@db.example:5432/perf``, and a command line is recorded (the reports'
``command``, the store's ``runs.command``) with every password in it masked the same way.

A module of its own, below every stage: bench's report writer and the store (store/) both use
it, and it imports nothing heavy.
"""

from __future__ import annotations

import re

# scheme://user: (the user holds no ':', '@', '/' or white space), then the password up to the
# URL's last '@': a password may hold an unescaped '@', which is masked with it
_USER = r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)"
_IN_TEXT = re.compile(_USER + r"\S*@")  # a URL among other words: up to its last '@'
_IN_ARGUMENT = re.compile(_USER + r".*@", re.DOTALL)  # one argument: up to its last '@'
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&\s]*")  # libpq's ?password=...
MASK = "***"


def masked(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ***: from the user's ':' up to
    the URL's last '@', and a ``password=`` query parameter."""
    return _QUERY_PASSWORD.sub(rf"\1{MASK}", _IN_TEXT.sub(rf"\1{MASK}@", text))


def masked_argv(argv: list[str]) -> list[str]:
    """A command line's arguments with every URL password masked (``--store=URL`` too), each
    argument taken whole: a password with a space in it is masked as well."""
    return [
        _QUERY_PASSWORD.sub(rf"\1{MASK}", _IN_ARGUMENT.sub(rf"\1{MASK}@", str(arg))) for arg in argv
    ]

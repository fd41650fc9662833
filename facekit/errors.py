"""The one kind of error message facekit shows a person: one line, of bounded length.

A bad input can carry anything (a 10 MB CSV cell, a file name with line breaks), and the
message naming it must still fit a terminal, a log line and an HTTP response."""
from __future__ import annotations

MAX_MESSAGE = 300  # characters; the rest of a longer message is cut and marked


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` with its line breaks as spaces, cut to ``limit`` characters ending in '…' when longer."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def first_line(error: BaseException) -> str:
    """A library exception's message cut to its first line (tarfile and pandas errors run over several),
    or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(":") if text else type(error).__name__


class UserError(ValueError):
    """An error caused by an input, with a message a person can act on: always one bounded line."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))

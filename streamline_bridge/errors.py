"""The one error type for bad input: it names the file, the byte offset when known, and what is wrong."""

from __future__ import annotations

import os

# Exit statuses of every command (documented in --help and the README).
EXIT_OK = 0  # done
EXIT_FAILURE = 1  # could not do it (an OS error, a failed command)
EXIT_USAGE = 2  # bad arguments
EXIT_DAMAGED = 3  # the input is damaged or unusable; whatever could be read was still shown


class InputError(Exception):
    """Input that cannot be read as what it claims to be.

    The CLI prints ``str(error)`` as one line and exits non-zero; it never shows a traceback.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str, offset: int | None = None):
        self.path = os.fspath(path) if path is not None else None
        self.message = message
        self.offset = offset
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path is None and self.offset is None:  # an option or a command line, not a file
            return self.message
        where = self.path or "<input>"
        if self.offset is not None:
            where += f" at byte {self.offset}"
        return f"{where}: {self.message}"

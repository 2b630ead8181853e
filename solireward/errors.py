"""Error types shared by every stage; each names what was wrong and where."""

from __future__ import annotations

# the exit status of a command that finished but could not process some of its inputs (`infer`: unreadable
# videos, whose records say why); 2 is bad input, as for every command
EXIT_SOME_FAILED = 3


class SoliRewardError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits with status 2."""


class InputError(SoliRewardError):
    """Bad user input: names the file, and where known the row and field, and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.row, self.field, self.reason = file, row, field, message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class ConfigError(InputError):
    """A configuration file or flag holds an unknown key or a value of the wrong type."""


class VideoReadError(SoliRewardError):
    """A video could not be read: missing, corrupt, truncated, empty, not a video, or too slow."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class TrainingDivergedError(SoliRewardError):
    """The loss became NaN or infinite."""

"""The command line's own user error, for mistakes that only exist on the command line."""

from segany.errors import SeganyError


class UsageError(SeganyError):
    """A malformed or contradictory command line: an unknown option, a bad output path, ..."""

"""The one exception type every lwa-pipe tool raises for data or runtime failures.

Tools turn it into a single readable line on stderr and exit status 1 (see `lwa_common.cli`).
"""

__all__ = ["LwaError"]


class LwaError(Exception):
    """A failure the user can act on: bad input, missing file, tool error. Exit status 1."""

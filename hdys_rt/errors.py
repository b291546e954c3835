"""The one project exception: user errors (bad arguments, bad files, bad streams).

The CLI turns it into a one-line message and exit status 1, never a traceback.
"""


class HdysError(Exception):
    """An error the user can fix; its message says what to fix."""

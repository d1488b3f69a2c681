"""Errors shared across layers.

`UserError` lives here rather than in `cli.py` so that `python -m lpm_npc.cli` (where the CLI
module runs as `__main__`) catches the same class the command modules raise.
"""


class UserError(Exception):
    """A mistake in what the user asked for: the CLI prints it as one line and exits with 2."""

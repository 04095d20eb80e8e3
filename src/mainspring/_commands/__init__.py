"""Subcommands of the ``mainspring`` command, one module each."""

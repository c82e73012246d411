"""What every ``sidecar`` subcommand shares: settings read once on first use, and failing cleanly."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from sidecar.errors import ConfigError
from sidecar.settings import Settings, load_settings


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: click.Context) -> Settings:
    """The settings, read on first use: ``--help`` and ``keys generate`` work even with a bad variable."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        try:
            root.obj = load_settings()
        except ConfigError as exc:
            fail(exc.message, code=2)
    assert isinstance(root.obj, Settings)
    return root.obj

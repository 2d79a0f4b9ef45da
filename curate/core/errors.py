"""One error hierarchy for `curate` and `train`, and the one top-level handler both CLIs use.

- :class:`TamisError` (and every subclass): something the user can fix (a bad option, an unreadable or
  unwritable file, a recipe that cannot run). The CLI prints one ``error: ...`` line on stderr (one
  JSON line on stdout with ``--json``) and exits with the error's ``exit_code`` (2 unless a subclass
  says otherwise).
- Environment errors that mean the same (``OSError``, undecodable text, a broken JSON or SQLite
  file, polars' "no data") are treated as user errors too: see :func:`is_user_error`.
- Anything else is a bug: the traceback, one ``error: internal error ...`` line, exit 70.

Library code raises; it never calls ``sys.exit`` and never uses ``SystemExit`` as control flow.
This module is light (no polars, no click at import time): both ``--help`` paths import it.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
EXIT_LOCKED = 3  # curate refresh: the state is locked by another run
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an unexpected exception (a bug), never 1 ("partial success")
EXIT_INTERRUPTED = 130


class TamisError(Exception):
    """A user-facing error: one line, exit ``exit_code`` (2: usage error or unusable input)."""

    exit_code: int = EXIT_USAGE


class UsageError(TamisError, ValueError):
    """A setting or argument that cannot be used (a value out of range, an unknown name)."""


class ConfigError(UsageError):
    """A config value (YAML key, ``--set`` override or flag) that cannot be used. ``key`` is the setting
    (a field name; None: the settings as a whole) and ``message`` says what is wrong without spelling
    it: the caller that knows where the setting came from spells it (:meth:`spelled`), ``--target`` on
    the command line, ``target`` at its place in a recipe or a YAML file. ``{name}`` in the message, for
    each name in ``mentions``, is another setting, spelled the same way. ``str()`` spells every setting
    by its field name (``target: must be at least 1``)."""

    def __init__(self, message: str, key: str | None = None, *, mentions: tuple[str, ...] = ()):
        self.key = key
        self.template = message
        self.mentions = tuple(mentions)
        self.message = self._text(str)
        super().__init__(f"{key}: {self.message}" if key else self.message)

    def _text(self, spell: Callable[[str], str]) -> str:
        text = self.template
        for name in self.mentions:
            text = text.replace("{" + name + "}", spell(name))
        return text

    def spelled(self, spell: Callable[[str], str]) -> ConfigError:
        """This error with its settings as the user wrote them: ``spell("target")`` is ``--target``."""
        return ConfigError(self._text(spell), spell(self.key) if self.key else None)


class InputUnusable(TamisError):
    """A whole input file cannot be read (the io layer's ``InputError`` is this)."""


class Failed(TamisError):
    """The command finished its work but some of it failed (exit 1, e.g. a training run that stopped)."""

    exit_code = EXIT_REJECTS


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean "this input / file / setting cannot be used", not a bug. Modules
    already imported only: checking must not import polars on a path that never used it."""
    import sqlite3  # its C extension is not needed by --help

    errors: list[type[BaseException]] = [
        TamisError,
        OSError,
        sqlite3.DatabaseError,
        UnicodeError,
        json.JSONDecodeError,
    ]
    pl = sys.modules.get("polars")
    if pl is not None:
        errors += [pl.exceptions.ComputeError, pl.exceptions.NoDataError]
    yaml = sys.modules.get("yaml")
    if yaml is not None:
        errors.append(yaml.YAMLError)
    return tuple(errors)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, user_error_types())


def exit_code_of(exc: BaseException) -> int:
    """The exit code an exception ends the process with."""
    if isinstance(exc, TamisError):
        return exc.exit_code
    return EXIT_USAGE if is_user_error(exc) else EXIT_SOFTWARE


def describe(exc: BaseException) -> str:
    """The one-line message of a user error (an OSError names its file)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        if exc.filename2 is not None:
            where = f"{where} -> {exc.filename2}"
        return f"{where}: {exc.strerror}" if where else exc.strerror
    return str(exc).strip() or type(exc).__name__


def handle(
    invoke: Callable[[], Any],
    *,
    prog: str,
    echo: Callable[[str], None],
    json_error: Callable[[str, int], None],
) -> Any:
    """Run ``invoke`` (a click group's ``invoke``) under the shared contract. ``echo`` writes one line
    on stderr; ``json_error(message, code)`` prints the JSON error line when ``--json`` was asked."""
    import click  # the core layer stays standard-library only; only the CLI entry needs click

    try:
        return invoke()
    except (click.exceptions.Exit, click.exceptions.Abort):
        raise
    except click.ClickException as exc:
        if exc.exit_code == 1:  # click's generic errors: a usage problem here, never "rejects"
            exc.exit_code = EXIT_USAGE
        json_error(exc.format_message(), exc.exit_code)
        raise
    except KeyboardInterrupt:
        echo("\ninterrupted")
        sys.exit(EXIT_INTERRUPTED)
    except user_error_types() as exc:
        message, code = describe(exc), exit_code_of(exc)
        echo(f"error: {message}")
        json_error(message, code)
        sys.exit(code)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        message = f"internal error: {type(exc).__name__}: {exc}"
        echo(f"error: {message} (a bug in {prog}; the traceback is above)")
        json_error(message, EXIT_SOFTWARE)
        sys.exit(EXIT_SOFTWARE)

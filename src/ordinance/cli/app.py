"""``ordinance``: the command-line face over the library API (CONTRACT §12).

Each group of commands lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ordinance",
    help="Execute declarative plans under a binding contract, with a verifiable journal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"ordinance {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", help="Print the version and exit.", callback=_version,
                                 is_eager=True),
) -> None:
    """Execute declarative plans under a binding contract, with a verifiable journal."""


_COMMAND_MODULES = ("validate_cmd", "run_cmd", "token_cmd", "queue_cmd", "journal_cmd", "conformance_cmd")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def _click_exceptions():
    """The click exception classes typer uses (recent typer vendors its own click)."""
    try:
        from typer._click import exceptions  # typer >= 0.20 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


def main() -> None:
    """Console-script entry point. Usage errors exit 2 with one line, never a traceback."""
    exc_mod = _click_exceptions()
    try:
        rc = app(standalone_mode=False)
    except exc_mod.UsageError as exc:
        from .options import err_console

        err_console.print(f"[bold red]error:[/] {exc.format_message()}", markup=True, highlight=False)
        hint = exc.ctx.command_path if exc.ctx else "ordinance"
        err_console.print(f"Try '{hint} --help' for help.", markup=False)
        raise SystemExit(2)
    except exc_mod.ClickException as exc:
        from .options import err_console

        err_console.print(f"[bold red]error:[/] {exc.format_message()}", markup=True, highlight=False)
        raise SystemExit(exc.exit_code)
    except typer.Exit as exc:
        raise SystemExit(getattr(exc, "exit_code", 0))
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130)
    except BrokenPipeError:
        # the reader went away (e.g. `ordinance list | head`): exit quietly, as a Unix tool should
        import os
        import sys

        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        raise SystemExit(141)
    raise SystemExit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()

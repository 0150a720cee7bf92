"""Options and output helpers shared by every command."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

__all__ = ["StoreOpt", "JsonOpt", "console", "err_console", "usage_error", "open_store_or_exit", "read_input", "write_json", "parse_env", "load_envelope_or_exit"]

StoreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        envvar="ORDINANCE_STORE",
        help="Store URL: a SQLite file path (default .ordinance/ordinance.db) or postgresql://… [env: ORDINANCE_STORE]",
        show_envvar=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON alone on stdout.")]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def usage_error(message: str) -> NoReturn:
    """One clear line on stderr, exit 2 (§12)."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(2)


def read_input(path: str, what: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (``-`` = standard input), or exit 2 with one line naming what could not be read."""
    limit = -1 if max_bytes is None else max_bytes + 1
    if path == "-":
        data = sys.stdin.buffer.read(limit)
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit)
        except FileNotFoundError:
            usage_error(f"cannot read {what} file {path!r}: no such file")
        except IsADirectoryError:
            usage_error(f"cannot read {what} file {path!r}: it is a directory")
        except PermissionError:
            usage_error(f"cannot read {what} file {path!r}: permission denied")
        except OSError as exc:
            usage_error(f"cannot read {what} file {path!r}: {exc.strerror or exc}")
    if max_bytes is not None and len(data) > max_bytes:
        usage_error(f"{what} file {path!r} is larger than {max_bytes} bytes")
    return data


def load_envelope_or_exit(path: str | None):
    """The operator's envelope from a JSON file (§6.2), None without one; exit 2 with one line if unusable."""
    if not path:
        return None
    from ..governance.envelope import Envelope, EnvelopeError

    try:
        return Envelope.from_file(path)
    except (OSError, ValueError, EnvelopeError) as exc:
        usage_error(f"cannot use envelope {path}: {exc}")


def open_store_or_exit(url: str | None, **options):
    from ..store import StoreError, open_store

    try:
        return open_store(url, **options)
    except StoreError as exc:
        usage_error(f"cannot open store {url or '(default)'}: {exc}")
    except ImportError as exc:  # pragma: no cover - a broken install
        usage_error(f"store backend unavailable: {exc}")


def write_json(obj) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair or pair.startswith("="):
            usage_error(f"--env takes KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        env[k] = v
    return env

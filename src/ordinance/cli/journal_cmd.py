"""``ordinance journal verify|checkpoint|public-key|prove|export`` (CONTRACT §8, §12).

Exit codes, for every journal command: 0 all good, 1 the journal (or a bundle) failed verification —
the report names the first bad record —, 2 usage, an unreadable file, an unknown execution or a
missing/unsafe key.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any, NoReturn

import typer

from .options import (
    JsonOpt,
    StoreOpt,
    console,
    err_console,
    open_store_or_exit,
    read_input,
    usage_error,
    write_json,
)

__all__ = ["register"]

_MAX_FILE = 1 << 30  # bundles and notes larger than 1 GiB are refused as unreadable

ExecOpt = Annotated[
    str | None, typer.Option("--execution", metavar="ID", help="Execution id (UUID).", show_default=False)
]


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit 1 (the journal or a bundle is not trustworthy)."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(1)


def _read_file(path: str, what: str) -> bytes:
    return read_input(path, what, max_bytes=_MAX_FILE)


def _read_note(path: str, what: str) -> str:
    data = _read_file(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        usage_error(f"{what} file {path} is not UTF-8 text")
    from ..ledger.note import NoteError, note_text

    try:
        note_text(text)
    except NoteError as exc:
        usage_error(f"{what} file {path} does not hold a signed note: {exc}")
    return text


def _verifier_from(public_key: str):
    from ..ledger.keys import SigningKeyError, read_verifier_key

    try:
        return read_verifier_key(public_key)
    except SigningKeyError as exc:
        usage_error(str(exc))


def _signer(st: Any):
    from ..ledger.keys import SigningKeyError, load_signer

    try:
        info = load_signer(st)
    except SigningKeyError as exc:
        usage_error(str(exc))
    if info.created:
        err_console.print(f"[dim]made a new signing key for log {info.origin} at {info.path} (mode 0600)[/]")
    return info


def _store_verifier(st: Any, public_key: str | None):
    """The verifier for the store's checkpoints: --public-key, else the local key (never made here)."""
    if public_key is not None:
        return _verifier_from(public_key), public_key
    from ..ledger.keys import SigningKeyError, key_path, load_signer

    path = key_path(st)
    if not path.exists():
        return None, path
    try:
        return load_signer(st, create=False).verifier, path
    except SigningKeyError as exc:
        usage_error(str(exc))


def _ledger_call(fn, *args: Any, **kwargs: Any) -> Any:
    """Run a service call, mapping its refusals to exit codes (1: not trustworthy, 2: usage)."""
    from ..ledger.service import LedgerError, MissingKeyError, UnknownExecutionError
    from ..store.base import StoreError

    try:
        return fn(*args, **kwargs)
    except (UnknownExecutionError, MissingKeyError) as exc:
        usage_error(str(exc))
    except LedgerError as exc:
        _fail(str(exc))
    except StoreError as exc:
        usage_error(f"store error: {exc}")


def _fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def _print_problems(problems: list[Any], omitted: int, limit: int = 20) -> None:
    console.print("[bold]findings[/] (first bad record first):")
    for p in problems[:limit]:
        console.print(f"  - {p}", markup=False)
    more = len(problems) - limit + omitted
    if more > 0:
        console.print(f"  [dim]… and {more} more finding(s); --json lists up to 1000[/]")


def _print_store_report(report: Any, store_url: str) -> None:
    scope = f"execution {report.execution_id}" if report.scope == "execution" else store_url
    if report.ok:
        console.print(f"[bold green]OK[/] journal of {scope} verifies")
    else:
        fb = report.first_bad
        where = []
        if fb.leaf_index is not None:
            where.append(f"leaf {fb.leaf_index}")
        if fb.execution_id:
            where.append(f"execution {fb.execution_id}")
        if fb.seq is not None:
            where.append(f"seq {fb.seq}")
        console.print(f"[bold red]TAMPERED[/] journal of {scope}: first bad record: {', '.join(where) or '(the log as a whole)'}")
        console.print(f"  [red]{fb.reason}[/]")
    rows: list[tuple[str, str]] = [
        ("records checked", _fmt_int(report.records_checked)),
        ("executions", _fmt_int(report.executions)),
        ("tree size", _fmt_int(report.tree_size)),
    ]
    if report.root_hash:
        rows.append(("root", report.root_hash.hex()))
    cp = report.checkpoint
    if cp is None:
        rows.append(("checkpoint", "none yet — run 'ordinance journal checkpoint' to sign the tree"))
    else:
        state = {"ok": "[green]signature OK, tree matches[/]", "failed": "[red]signature OK, tree does NOT match[/]"}
        extra = f"; {_fmt_int(report.uncovered)} record(s) appended since" if report.uncovered else ""
        status = state.get(report.checkpoint_status, report.checkpoint_status)
        rows.append(("checkpoint", f"size {_fmt_int(cp.tree_size)} by {cp.origin}: {status}{extra}"))
        rows.append(("checkpoints", f"{report.checkpoints_checked} stored, signatures checked"))
    if report.since is not None:
        s = report.since
        rows.append(("since", f"[green]extends the checkpoint of size {_fmt_int(s.old_size)}[/]" if s.ok
                     else f"[red]does NOT extend the checkpoint of size {_fmt_int(s.old_size)}[/]"))
    if report.results_checked:
        rows.append(("results", f"{report.results_checked} PlanResult digest(s) checked"))
    rows.append(("rate", f"{_fmt_int(round(report.rate))} records/s ({report.elapsed_s:.2f} s)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        console.print(f"  [bold]{k.ljust(width)}[/]  {v}")
    if not report.ok:
        console.print()
        _print_problems(report.problems, report.problems_omitted)


def _verify_bundle(bundle: str, public_key: str | None, allow_incomplete: bool, json_out: bool) -> NoReturn:
    if public_key is None:
        usage_error("--bundle needs --public-key KEYFILE (the log's verifier key, from 'ordinance journal public-key')")
    verifier = _verifier_from(public_key)
    data = _read_file(bundle, "bundle")
    from ..contract.jsonio import DocumentError, load_document
    from ..ledger.bundle import verify_bundle

    try:
        doc = load_document(data, max_bytes=_MAX_FILE)
    except DocumentError as exc:
        usage_error(f"bundle file {bundle} is not a JSON document: {exc}")
    report = verify_bundle(doc, verifier, require_complete=not allow_incomplete)
    if json_out:
        write_json({"scope": "bundle", "bundle": bundle, **report.to_dict()})
    else:
        if report.ok:
            console.print(f"[bold green]OK[/] bundle {bundle}: {report.summary()}")
        else:
            console.print(f"[bold red]REJECTED[/] bundle {bundle}: {report.first_bad}")
            if len(report.problems) > 1:
                _print_problems(report.problems, 0)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    journal = typer.Typer(
        name="journal",
        help="Verify, checkpoint, prove and export the hash-chained, Merkle-tree journal (§8).",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(journal, name="journal")

    @journal.command("verify")
    def verify_cmd(
        execution: ExecOpt = None,
        since: Annotated[str | None, typer.Option("--since", metavar="CHECKPOINT_FILE", help="A signed checkpoint note saved earlier (output of 'journal checkpoint'): the journal must extend it (catches truncation and rewritten history).", show_default=False)] = None,
        bundle: Annotated[str | None, typer.Option("--bundle", metavar="FILE", help="Verify this export bundle offline instead of a store (no store is opened).", show_default=False)] = None,
        public_key: Annotated[str | None, typer.Option("--public-key", metavar="KEYFILE", help="The log's verifier key file (from 'journal public-key'). Needed with --bundle; for a store it replaces the local key.", show_default=False)] = None,
        allow_incomplete: Annotated[bool, typer.Option("--allow-incomplete", help="With --bundle: accept executions that have not ended (no execution.result record yet).")] = False,
        workers: Annotated[int | None, typer.Option("--workers", metavar="N", min=1, max=64, help="Worker processes for large journals (default: the CPU count from 40 000 records on).", show_default=False)] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Recompute every chain and the Merkle tree and check them against the signed checkpoints.

        Exit codes: 0 the journal verifies, 1 it was tampered with (the report names the first bad record: leaf index, execution id, seq, reason), 2 usage, an unreadable file, an unknown execution or a missing key.

        With --bundle FILE --public-key KEYFILE it verifies an export bundle offline instead, opening no store.
        """
        if bundle is not None:
            if execution is not None or since is not None:
                usage_error("--bundle verifies a bundle offline; it cannot be combined with --execution or --since")
            _verify_bundle(bundle, public_key, allow_incomplete, json_out)
        if allow_incomplete:
            usage_error("--allow-incomplete applies to --bundle only")
        since_note = _read_note(since, "--since checkpoint") if since is not None else None
        st = open_store_or_exit(store, create=False)
        verifier, key_file = _store_verifier(st, public_key)
        from ..ledger.service import verify_store

        if verifier is None and st.latest_checkpoint() is not None:
            usage_error(f"the store has signed checkpoints but there is no key to check them: no signing key at "
                        f"{key_file}; pass --public-key KEYFILE")
        report = _ledger_call(verify_store, st, verifier, since_note=since_note, execution_id=execution,
                              workers=workers)
        st.close()
        if json_out:
            write_json(report.to_dict())
        else:
            _print_store_report(report, st.url)
        raise typer.Exit(0 if report.ok else 1)

    @journal.command("checkpoint")
    def checkpoint_cmd(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
        """Sign the journal's current Merkle tree (a C2SP tlog-checkpoint), store it and print the signed note.

        Save the note somewhere else ('> checkpoint.note') and later run 'journal verify --since checkpoint.note': that catches any rewrite or truncation of what it covers.

        Exit 1 (nothing signed) if the journal no longer extends the previous checkpoint.
        """
        st = open_store_or_exit(store, create=False)
        info = _signer(st)
        from ..ledger.service import checkpoint

        before = st.latest_checkpoint()
        note, cp = _ledger_call(checkpoint, st, info.signer)
        new = before is None or before.note != note
        st.close()
        if json_out:
            write_json({"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": cp.root_hash.hex(),
                        "note": note, "new": new, "public_key": info.verifier.to_key()})
            return
        sys.stdout.write(note)
        sys.stdout.flush()
        err_console.print(f"[dim]{'signed' if new else 'unchanged since the last'} checkpoint: tree size "
                          f"{cp.tree_size} of log {cp.origin}[/]")

    @journal.command("public-key")
    def public_key_cmd(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
        """Print the log's public verifier key (C2SP note-verifier form), e.g. to save as KEYFILE.

        The signing key is made on first use: mode 0600, beside the SQLite store, or in $ORDINANCE_KEY_DIR (which wins) or ~/.config/ordinance/ for PostgreSQL.
        """
        st = open_store_or_exit(store, create=False)
        info = _signer(st)
        st.close()
        if json_out:
            write_json({"public_key": info.verifier.to_key(), "origin": info.origin,
                        "key_id": f"{info.signer.key_id:08x}", "key_file": str(info.path), "created": info.created})
            return
        sys.stdout.write(info.verifier.to_key() + "\n")

    @journal.command("prove")
    def prove_cmd(
        execution: ExecOpt = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Inclusion proofs of an execution's records against a signed checkpoint (signed now if none covers them).

        Exit 1 if a record no longer matches the checkpoint; 2 for an unknown execution.
        """
        if not execution:
            usage_error("journal prove needs --execution ID")
        st = open_store_or_exit(store, create=False)
        info = _signer(st)
        from ..ledger.service import prove

        out = _ledger_call(prove, st, execution, info.signer)
        st.close()
        if json_out:
            write_json(out)
            return
        from rich.table import Table

        cp = out["checkpoint"]
        console.print(f"execution {execution}: {len(out['records'])} record(s) included in the tree of size "
                      f"{_fmt_int(cp['tree_size'])} signed by {cp['origin']}")
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("leaf", "seq", "kind", "leaf hash", "proof"):
            table.add_column(col)
        for r in out["records"]:
            table.add_row(str(r["leaf_index"]), str(r["seq"]), r["kind"], r["leaf_hash"][:16] + "…",
                          f"{len(r['inclusion_proof'])} hashes")
        console.print(table)
        console.print("[dim]signed checkpoint:[/]")
        sys.stdout.write(out["checkpoint_note"])

    @journal.command("export")
    def export_cmd(
        execution: ExecOpt = None,
        bundle: Annotated[str | None, typer.Option("--bundle", metavar="FILE", help="Write an offline bundle (records, inclusion proofs, signed checkpoint) to this file instead; '-' for stdout.", show_default=False)] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Print an execution's records as JSON Lines ({"leaf_index", "entry_hash", "record"}), or write a bundle.

        A bundle (records, inclusion proofs, a signed checkpoint) verifies offline: 'ordinance journal verify --bundle FILE --public-key KEYFILE'.
        """
        if not execution:
            usage_error("journal export needs --execution ID")
        if bundle is None and json_out:
            usage_error("--json applies to --bundle (the records are JSON Lines already)")
        st = open_store_or_exit(store, create=False)
        if bundle is None:
            from ..ledger.service import export_records

            items = _ledger_call(lambda: list(export_records(st, execution)))
            st.close()
            out = sys.stdout
            for item in items:
                out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            out.flush()
            return
        info = _signer(st)
        from ..ledger.service import export_bundle

        doc = _ledger_call(export_bundle, st, execution, info.signer)
        st.close()
        text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
        if bundle == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            tmp = f"{bundle}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, bundle)
        except OSError as exc:
            usage_error(f"cannot write bundle file {bundle}: {exc.strerror or exc}")
        from ..ledger.note import Checkpoint, note_text

        cp = Checkpoint.parse(note_text(doc["checkpoint"]))
        if json_out:
            write_json({"bundle": bundle, "execution_id": execution, "records": len(doc["records"]),
                        "checkpoint": cp.to_dict()})
            return
        console.print(f"wrote {bundle}: {len(doc['records'])} record(s) of execution {execution}, "
                      f"proved against the checkpoint of size {_fmt_int(cp.tree_size)} ({cp.origin})")
        console.print(f"[dim]verify offline: ordinance journal verify --bundle {bundle} --public-key KEYFILE[/]")

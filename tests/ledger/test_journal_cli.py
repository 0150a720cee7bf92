"""§8 / §12: ``ordinance journal verify|checkpoint|public-key|prove|export`` through the real CLI.

Exit codes: 0 good, 1 the journal or a bundle failed verification, 2 usage / unreadable file / unknown
execution / missing or unsafe key.  Independent invocations run concurrently to keep the suite fast.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import ENV, cli, make_plan, sid

from ordinance.ledger import (
    Checkpoint,
    Signer,
    note_text,
    record_leaf_hash,
    sign_checkpoint,
    verify_inclusion,
)

REPORT_KEYS = {
    "ok", "scope", "execution_id", "records_checked", "executions", "tree_size", "root_hash", "checkpoint",
    "checkpoint_status", "checkpoints_checked", "uncovered_records", "results_checked", "since", "first_bad",
    "problems", "problems_omitted", "elapsed_ms", "records_per_second",
}


def _plan(n: int, **fields: Any) -> dict[str, Any]:
    steps = [{"action": "control.echo", "payload": {"value": i}, **({"depends_on": [sid(i - 1)]} if i > 1 else {})}
             for i in range(1, n + 1)]
    return make_plan(*steps, id=str(uuid.uuid4()), **fields)


class Site:
    """A directory with a default store (``.ordinance/ordinance.db``) written by real engine runs."""

    def __init__(self, root: Path) -> None:
        from ordinance.engine import Engine
        from ordinance.store.sqlite import SQLiteStore

        self.root = root
        self.db = root / ".ordinance" / "ordinance.db"
        (root / "ws").mkdir(parents=True)
        store = SQLiteStore(str(self.db), durability="off")
        engine = Engine(store, workspace=str(root / "ws"))
        self.ids = [engine.run(_plan(n), environment=ENV).execution_id for n in (3, 5, 2)]
        store.close()
        # the key beside the store (where it goes by default), stated so that an outer ORDINANCE_KEY_DIR is ignored
        self.env = {"ORDINANCE_KEY_DIR": str(self.db.parent), "ORDINANCE_LOG_ORIGIN": "ordinance.test/cli"}

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        full = dict(self.env)
        if cwd is not None and (Path(cwd) / ".ordinance").is_dir():
            full["ORDINANCE_KEY_DIR"] = str(Path(cwd) / ".ordinance")
        full.update(env or {})
        proc = cli(*args, cwd=str(cwd or self.root), env=full)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def many(self, calls: list[tuple[str, ...]], **kwargs: Any) -> list[tuple[int, str, str]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self.run(*args, **kwargs), calls))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    s = Site(tmp_path_factory.mktemp("journal-cli"))
    rc, out, err = s.run("journal", "public-key", "--json")  # makes the key beside the store
    assert rc == 0, err
    s.public = json.loads(out)
    (s.root / "pub.key").write_text(s.public["public_key"] + "\n")
    rc, out, err = s.run("journal", "export", "--execution", s.ids[1], "--bundle", "bundle.json", "--json")
    assert rc == 0, err
    s.export = json.loads(out)  # exporting signed a checkpoint covering the whole journal
    rc, note, err = s.run("journal", "checkpoint")  # nothing new: prints that checkpoint again
    assert rc == 0, err
    (s.root / "cp.note").write_text(note)
    return s


def test_s12_journal_help_lists_every_command_and_option(site: Site) -> None:
    """§12: ``journal --help`` names every sub-command, ``journal verify --help`` every option."""
    (rc1, out1, _), (rc2, out2, _) = site.many([("journal", "--help"), ("journal", "verify", "--help")])
    assert rc1 == rc2 == 0
    for word in ("verify", "checkpoint", "public-key", "prove", "export"):
        assert word in out1
    for word in ("--execution", "--since", "--bundle", "--public-key", "--json", "--store", "Exit codes"):
        assert word in out2


def test_s8_public_key_is_made_once_with_mode_0600(site: Site) -> None:
    """§8: ``journal public-key`` makes the Ed25519 key beside the store (0600) and prints its verifier key."""
    pub = site.public
    assert set(pub) == {"public_key", "origin", "key_id", "key_file", "created"}
    assert pub["created"] is True and pub["origin"] == "ordinance.test/cli"
    assert Path(pub["key_file"]) == site.db.parent / "ordinance-signing.key"
    assert os.stat(pub["key_file"]).st_mode & 0o777 == 0o600
    assert pub["public_key"].startswith(f"ordinance.test/cli+{pub['key_id']}+")
    rc, out, _ = site.run("journal", "public-key")
    assert rc == 0 and out == pub["public_key"] + "\n"


def test_s8_checkpoint_prints_the_signed_note(site: Site) -> None:
    """§8: ``journal checkpoint`` signs the tree; plain output is the C2SP note alone, --json its parts."""
    rc, out, err = site.run("journal", "checkpoint", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert set(doc) == {"origin", "tree_size", "root_hash", "note", "new", "public_key"}
    cp = Checkpoint.parse(note_text(doc["note"]))
    assert cp.origin == doc["origin"] == "ordinance.test/cli" and cp.tree_size == doc["tree_size"] >= 3
    assert cp.root_hash.hex() == doc["root_hash"]
    assert note_text((site.root / "cp.note").read_text()) == cp.to_text()  # plain output: the note alone
    assert doc["new"] is False  # nothing appended since the checkpoint the export signed


def test_s8_verify_exit_codes_and_json(site: Site) -> None:
    """§8: ``journal verify`` exits 0 on an intact journal; --json prints the report with the checkpoint status."""
    results = site.many([
        ("journal", "verify", "--json"),
        ("journal", "verify"),
        ("journal", "verify", "--execution", site.ids[0], "--json"),
        ("journal", "verify", "--since", "cp.note", "--json"),
    ])
    (rc, out, err), (rc_h, human, _), (rc_e, one, _), (rc_s, since, _) = results
    assert rc == rc_h == rc_e == rc_s == 0, err
    rep = json.loads(out)
    assert set(rep) == REPORT_KEYS
    assert rep["ok"] is True and rep["first_bad"] is None and rep["problems"] == []
    assert rep["scope"] == "store" and rep["checkpoint_status"] == "ok" and rep["executions"] == 3
    assert rep["records_checked"] == rep["tree_size"] == rep["checkpoint"]["tree_size"]
    assert rep["results_checked"] == 3 and isinstance(rep["records_per_second"], int)
    assert human.startswith("OK") and "records checked" in human and "checkpoint" in human and "records/s" in human
    one = json.loads(one)
    assert one["scope"] == "execution" and one["execution_id"] == site.ids[0] and one["ok"] is True
    assert json.loads(since)["since"]["ok"] is True


def test_s8_prove_gives_checkable_inclusion_proofs(site: Site) -> None:
    """§8: ``journal prove --execution`` gives each record's inclusion proof against a signed checkpoint."""
    rc, out, err = site.run("journal", "prove", "--execution", site.ids[2], "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert set(doc) == {"execution_id", "checkpoint", "checkpoint_note", "records"}
    cp = Checkpoint.parse(note_text(doc["checkpoint_note"]))
    assert doc["checkpoint"] == cp.to_dict()
    from ordinance.store.sqlite import SQLiteStore

    with SQLiteStore(str(site.db)) as store:
        recs = list(store.journal(site.ids[2]))
    assert [r["leaf_index"] for r in doc["records"]] == [r.leaf_index for r in recs]
    for item, rec in zip(doc["records"], recs):
        assert set(item) == {"leaf_index", "seq", "kind", "entry_hash", "leaf_hash", "inclusion_proof"}
        proof = [base64.b64decode(p) for p in item["inclusion_proof"]]
        verify_inclusion(record_leaf_hash(rec.body), rec.leaf_index, cp.tree_size, proof, cp.root_hash)


def test_s8_export_prints_json_lines(site: Site) -> None:
    """§8: ``journal export --execution`` prints one JSON object per record, in leaf order."""
    rc, out, err = site.run("journal", "export", "--execution", site.ids[0])
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(set(x) == {"leaf_index", "entry_hash", "record"} for x in lines)
    assert [x["record"]["seq"] for x in lines] == list(range(len(lines)))
    assert all(x["record"]["execution_id"] == site.ids[0] for x in lines)
    assert lines[-1]["record"]["kind"] == "execution.result"
    assert [x["leaf_index"] for x in lines] == sorted(x["leaf_index"] for x in lines)


def test_s8_bundle_verifies_offline_without_any_store(site: Site, tmp_path) -> None:
    """§8: a bundle verifies with only the public key: no store is opened (none exists where it runs)."""
    assert site.export["records"] >= 5 and site.export["execution_id"] == site.ids[1]
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    shutil.copy(site.root / "bundle.json", elsewhere / "b.json")
    shutil.copy(site.root / "pub.key", elsewhere / "k.pub")
    rc, out, err = site.run("journal", "verify", "--bundle", "b.json", "--public-key", "k.pub", "--json",
                            "--store", str(tmp_path / "no" / "such" / "store.db"), cwd=elsewhere)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["ok"] is True and rep["scope"] == "bundle" and rep["records_checked"] == site.export["records"]
    assert sorted(os.listdir(elsewhere)) == ["b.json", "k.pub"] and not (tmp_path / "no").exists()


def _tampered_bundles(site: Site, tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (bundle file, key file) for each way of breaking a bundle."""
    good = json.loads((site.root / "bundle.json").read_text())
    out: dict[str, tuple[str, str]] = {}
    pub = str(site.root / "pub.key")

    def write(name: str, doc: Any, key: str = pub) -> None:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(doc))
        out[name] = (str(path), key)

    b = json.loads(json.dumps(good))
    rec = json.loads(b["records"][2]["body"])
    rec["data"]["tampered"] = True
    b["records"][2]["body"] = json.dumps(rec, separators=(",", ":"), sort_keys=True)
    write("changed-record", b)

    b = json.loads(json.dumps(good))
    del b["records"][1]
    write("removed-record", b)

    b = json.loads(json.dumps(good))
    proof = b["records"][0]["inclusion_proof"]
    proof[0] = base64.b64encode(bytes(32)).decode()
    write("altered-proof", b)

    b = json.loads(json.dumps(good))
    lines = b["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree under the same signature
    b["checkpoint"] = "\n".join(lines)
    write("altered-checkpoint", b)

    other = Signer.generate("ordinance.test/other")
    wrong_key = tmp / "wrong.pub"
    wrong_key.write_text(other.verifier.to_key() + "\n")
    write("wrong-public-key", good, str(wrong_key))

    b = json.loads(json.dumps(good))
    impostor = Signer.generate("ordinance.test/cli")  # same log name, another key
    cp = Checkpoint.parse(note_text(b["checkpoint"]))
    b["checkpoint"] = sign_checkpoint(cp, impostor)
    write("unknown-signer", b)
    return out


def test_s8_tampered_bundles_are_rejected_offline(site: Site, tmp_path) -> None:
    """§8: a changed or removed record, an altered proof or checkpoint, a wrong key, an unknown signer: exit 1."""
    cases = _tampered_bundles(site, tmp_path)
    calls = [("journal", "verify", "--bundle", f, "--public-key", k, "--json", "--store", "/nonexistent/x.db")
             for f, k in cases.values()]
    expect = {
        "changed-record": "not in the checkpointed log: inclusion proof fails",
        "removed-record": "seq gap",
        "altered-proof": "not in the checkpointed log: inclusion proof fails",
        "altered-checkpoint": "invalid signature by known key",
        "wrong-public-key": "not signed by a known key",
        "unknown-signer": "not signed by a known key",
    }
    for name, (rc, out, err) in zip(cases, site.many(calls, cwd=tmp_path)):
        assert rc == 1, (name, out, err)
        rep = json.loads(out)
        assert rep["ok"] is False and rep["first_bad"] is not None, name
        assert expect[name] in rep["first_bad"]["reason"], (name, rep["first_bad"])
        if name in ("changed-record", "altered-proof"):
            assert rep["first_bad"]["leaf_index"] is not None


def test_s8_tampered_store_exits_1_naming_the_record(site: Site, tmp_path) -> None:
    """§8: a changed record in the store makes ``journal verify`` exit 1 and name it (human and JSON)."""
    import sqlite3

    copy = tmp_path / "copy"
    shutil.copytree(site.root / ".ordinance", copy / ".ordinance")
    conn = sqlite3.connect(copy / ".ordinance" / "ordinance.db")
    li, eid, seq, body = conn.execute(
        "SELECT leaf_index, execution_id, seq, body FROM journal ORDER BY leaf_index LIMIT 1 OFFSET 4").fetchone()
    conn.execute("UPDATE journal SET body = ? WHERE leaf_index = ?", (bytes(body).replace(b'"at":', b'"at": '), li))
    conn.commit()
    conn.close()
    (rc, out, _), (rc_h, human, _) = site.many([("journal", "verify", "--json"), ("journal", "verify")], cwd=copy)
    assert rc == rc_h == 1
    rep = json.loads(out)
    assert rep["ok"] is False and rep["checkpoint_status"] == "failed"
    assert rep["first_bad"] == {"leaf_index": li, "execution_id": eid, "seq": seq,
                                "reason": "entry_hash does not match body"}
    assert human.startswith("TAMPERED") and f"leaf {li}" in human and eid in human


def test_s12_journal_usage_errors_exit_2(site: Site, tmp_path) -> None:
    """§12: usage errors, unreadable files, unknown executions and unusable keys: one line, exit 2."""
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "junk.note").write_text("not a note\n")
    unknown = str(uuid.uuid4())
    calls = [
        ("journal", "verify", "--execution", unknown),
        ("journal", "prove"),
        ("journal", "verify", "--bundle", "bundle.json"),
        ("journal", "verify", "--bundle", str(tmp_path / "missing.json"), "--public-key", "pub.key"),
        ("journal", "verify", "--bundle", str(tmp_path / "junk.json"), "--public-key", "pub.key"),
        ("journal", "verify", "--since", str(tmp_path / "junk.note")),
    ]
    for args, (rc, out, err) in zip(calls, site.many(calls)):
        assert rc == 2, (args, out, err)
        assert "Traceback" not in err and err.strip().startswith("error:"), (args, err)


def test_s8_unsafe_or_missing_key_is_refused(site: Site, tmp_path) -> None:
    """§8: a key file others may read is refused; checkpoints without a key to check them: exit 2."""
    copy = tmp_path / "copy"
    shutil.copytree(site.root / ".ordinance", copy / ".ordinance")  # it has signed checkpoints
    key = copy / ".ordinance" / "ordinance-signing.key"
    os.chmod(key, 0o644)
    other = tmp_path / "other"
    shutil.copytree(copy / ".ordinance", other / ".ordinance")
    os.remove(other / ".ordinance" / "ordinance-signing.key")
    with ThreadPoolExecutor(max_workers=3) as pool:
        (rc1, _, err1), (rc2, _, err2), (rc3, out3, err3) = pool.map(lambda a: site.run(*a[1:], cwd=a[0]), [
            (copy, "journal", "verify"),
            (other, "journal", "verify"),
            (other, "journal", "verify", "--public-key", str(site.root / "pub.key"), "--json"),
        ])
    assert rc1 == 2 and "group or others" in err1 and "chmod 600" in err1
    assert rc2 == 2 and "no key to check them" in err2 and "--public-key" in err2
    assert rc3 == 0 and json.loads(out3)["checkpoint_status"] == "ok", err3


def test_s8_the_engine_signs_a_checkpoint_after_a_run(tmp_path):
    """§8: ordinance run signs the tree after the run; journal verify then checks against that checkpoint."""
    import json as _json

    from support import cli as _cli, make_plan as _make_plan

    plan = tmp_path / "p.json"
    plan.write_text(_json.dumps(_make_plan({"action": "control.noop"})))
    env = {"ORDINANCE_KEY_DIR": str(tmp_path / "keys")}
    assert _cli("run", str(plan), "--env", "TARGET=x", cwd=tmp_path, env=env).returncode == 0
    from ordinance.store.sqlite import SQLiteStore

    st = SQLiteStore(str(tmp_path / ".ordinance" / "ordinance.db"))
    try:
        cp = st.latest_checkpoint()
        assert cp is not None and cp.tree_size == st.journal_size()
    finally:
        st.close()
    assert _cli("run", str(plan), "--env", "TARGET=x", "--no-checkpoint", cwd=tmp_path, env=env).returncode == 0
    verified = _cli("journal", "verify", "--json", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout

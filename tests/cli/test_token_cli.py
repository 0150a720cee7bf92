"""`ordinance token issue|revoke|list` and authorization through the CLI (CONTRACT §6.1, §12)."""

from __future__ import annotations

import json

from support import cli, make_plan


def test_s6_1_token_issue_list_revoke_and_run_with_authorization(tmp_path):
    issued = cli("token", "issue", "--user", "ada", "--scope", "control.*", "--role", "ops", "--json", cwd=tmp_path)
    assert issued.returncode == 0
    tok = json.loads(issued.stdout)
    assert len(tok["token"]) >= 43 and tok["user_id"] == "ada"
    listed = json.loads(cli("token", "list", "--json", cwd=tmp_path).stdout)
    assert listed[0]["token_id"] == tok["token_id"] and "token" not in listed[0]  # never the secret
    assert tok["token"].encode() not in (tmp_path / ".ordinance" / "ordinance.db").read_bytes()

    plan = tmp_path / "p.json"
    plan.write_text(json.dumps(make_plan({"action": "control.noop"})))
    base = ("run", str(plan), "--env", "TARGET=x", "--authorization", "--json")
    assert cli(*base, cwd=tmp_path).returncode == 1  # no principal
    ok = cli(*base, "--user", "ada", "--token", tok["token"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert cli("token", "revoke", tok["token_id"], cwd=tmp_path).returncode == 0
    denied = cli(*base, "--user", "ada", "--token", tok["token"], cwd=tmp_path)
    assert denied.returncode == 1 and json.loads(denied.stdout)["error"]["error_code"] == "POLICY_DENIED"
    assert cli("token", "revoke", "tok_nope", cwd=tmp_path).returncode == 1
    assert cli("token", "issue", "--user", "x", "--scope", "*", "--ttl", "soon", cwd=tmp_path).returncode == 2

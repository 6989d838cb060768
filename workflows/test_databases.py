"""Tests of the read-only database policy."""

from pathlib import Path

from app.grants.base import GrantUser
from app.grants.postgres_role import render_login
from app.testing import decide, load_workflow, make_request

workflow = load_workflow(Path(__file__).with_name("databases.py"))


def test_any_engineer_goes_to_one_db_owner() -> None:
    outcome = decide(workflow, make_request(workflow, "orders-db-readonly"))

    assert outcome.routed and outcome.required_approvals == 1
    assert outcome.approvers == ["S0DBOWNERS"]


def test_the_login_is_the_email_local_part() -> None:
    user = GrantUser(slack_id="U1", email="Alice.Smith@example.com")

    assert render_login("{email_local}", user) == "alice.smith"

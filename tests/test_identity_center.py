"""AWS IAM Identity Center strategies against moto in server mode (boto3 over HTTP to
127.0.0.1), and botocore's Stubber for the answers moto cannot give (IN_PROGRESS then FAILED,
throttling, conflicts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from app.grants.base import GrantError, Retry
from app.testing import check_strategy, grant_context
from app.workflows import IdentityCenterAssignment, IdentityCenterGroup
from tests.support.bot import REQUESTER as REQUESTER_ID
from tests.support.through_slack import approve, target_bot, wait_ended
from tests.support.wait import wait_until

REGION = "eu-west-1"
ACCOUNT = "111122223333"
INSTANCE = "arn:aws:sso:::instance/ssoins-1111111111111111"
STORE = "d-1234567890"


@dataclass
class Moto:
    url: str
    sso: Any
    store: Any
    permission_set: str
    alice: str  # her Identity Center user id
    group: str

    def assigned(self, principal: str, permission_set: str | None = None) -> bool:
        found = self.sso.list_account_assignments(
            InstanceArn=INSTANCE,
            AccountId=ACCOUNT,
            PermissionSetArn=permission_set or self.permission_set,
        )["AccountAssignments"]
        return any(a["PrincipalId"] == principal for a in found)

    def member(self, user_id: str) -> bool:
        memberships = self.store.list_group_memberships(IdentityStoreId=STORE, GroupId=self.group)
        return any(m["MemberId"].get("UserId") == user_id for m in memberships["GroupMemberships"])


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Moto:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    boto3.client("s3", endpoint_url=moto_server, region_name=REGION)  # warm up the import
    import urllib.request

    urllib.request.urlopen(  # a fresh moto state for each test
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    ).close()
    sso = boto3.client("sso-admin", endpoint_url=moto_server, region_name=REGION)
    store = boto3.client("identitystore", endpoint_url=moto_server, region_name=REGION)
    permission_set = sso.create_permission_set(Name="ProdAdmin", InstanceArn=INSTANCE)[
        "PermissionSet"
    ]["PermissionSetArn"]
    alice = store.create_user(
        IdentityStoreId=STORE,
        UserName="alice",
        DisplayName="Alice",
        Name={"GivenName": "Alice", "FamilyName": "Example"},
        Emails=[{"Value": "alice@example.com", "Type": "work", "Primary": True}],
    )["UserId"]
    group = store.create_group(IdentityStoreId=STORE, DisplayName="prod-admins")["GroupId"]
    return Moto(moto_server, sso, store, permission_set, alice, group)


def assignment(aws: Moto, **kwargs: Any) -> IdentityCenterAssignment:
    options: dict[str, Any] = {
        "region": REGION,
        "identity_store_id": STORE,
        "instance_arn": INSTANCE,
        "account_id": ACCOUNT,
        "permission_set_arn": aws.permission_set,
        "endpoint_url": aws.url,
        "poll_interval": 0.05,
        **kwargs,
    }
    return IdentityCenterAssignment(**options)


def group(aws: Moto, **kwargs: Any) -> IdentityCenterGroup:
    options: dict[str, Any] = {
        "region": REGION,
        "identity_store_id": STORE,
        "group_id": aws.group,
        "endpoint_url": aws.url,
        **kwargs,
    }
    return IdentityCenterGroup(**options)


# -- against moto ----------------------------------------------------------------------------


def test_assignment_keeps_the_strategy_contract(aws: Moto) -> None:
    problems = check_strategy(
        assignment(aws),
        grant_context(email="alice@example.com"),
        has_access=lambda: aws.assigned(aws.alice),
        failing=[(assignment(aws), grant_context(email="nobody@example.com"))],
    )
    assert problems == []


def test_assignment_held_before_is_reported_and_kept(aws: Moto) -> None:
    aws.sso.create_account_assignment(
        InstanceArn=INSTANCE,
        TargetId=ACCOUNT,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=aws.permission_set,
        PrincipalType="USER",
        PrincipalId=aws.alice,
    )
    granted = assignment(aws).grant(grant_context(email="alice@example.com"))
    assert granted.already_had
    assert (
        check_strategy(
            assignment(aws),
            grant_context(email="alice@example.com"),
            has_access=lambda: aws.assigned(aws.alice),
        )
        == []
    )
    assert aws.assigned(aws.alice)


def test_assignment_revoke_deletes_what_was_granted_after_a_workflow_edit(aws: Moto) -> None:
    context = grant_context(email="alice@example.com")
    granted = assignment(aws).grant(context)
    other = aws.sso.create_permission_set(Name="ReadOnly", InstanceArn=INSTANCE)["PermissionSet"]
    edited = assignment(aws, permission_set_arn=other["PermissionSetArn"])
    edited.revoke(replace(context, event="revoke", undo=dict(granted.undo)))
    assert not aws.assigned(aws.alice)


def test_user_mapped_by_user_name_when_emails_differ(aws: Moto) -> None:
    grant = assignment(aws, users={"U0TESTUSER": "alice"})
    grant.grant(grant_context(email="alice@other-domain.example"))
    assert aws.assigned(aws.alice)
    with pytest.raises(GrantError, match=r"no Identity Center user with emails\.value"):
        assignment(aws).grant(grant_context(email="alice@other-domain.example"))


def test_group_keeps_the_strategy_contract(aws: Moto) -> None:
    problems = check_strategy(
        group(aws),
        grant_context(email="alice@example.com"),
        has_access=lambda: aws.member(aws.alice),
        failing=[(group(aws), grant_context(email="nobody@example.com"))],
    )
    assert problems == []


def test_group_membership_held_before_is_reported(aws: Moto) -> None:
    aws.store.create_group_membership(
        IdentityStoreId=STORE, GroupId=aws.group, MemberId={"UserId": aws.alice}
    )
    assert group(aws).grant(grant_context(email="alice@example.com")).already_had


def test_through_slack_assignment_exists_while_granted_and_is_gone_after_expiry(
    aws: Moto, bot_factory
) -> None:
    grant = assignment(aws, retry=Retry(attempts=2, backoff=timedelta(milliseconds=200)))
    bot = target_bot(bot_factory, grant, durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert aws.assigned(aws.alice)
    ended = wait_ended(bot, request)
    assert not aws.assigned(aws.alice)
    assert ended.undo["principal_id"] == aws.alice


def test_through_slack_group_member_while_granted(aws: Moto, bot_factory) -> None:
    bot = target_bot(bot_factory, group(aws), durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert aws.member(aws.alice)
    wait_ended(bot, request)
    assert not aws.member(aws.alice)


# -- what moto cannot do: botocore's Stubber ------------------------------------------------


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, Stubber, Any, Any]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sso = boto3.client("sso-admin", region_name=REGION)
    store = boto3.client("identitystore", region_name=REGION)
    with Stubber(sso) as sso_stub, Stubber(store) as store_stub:
        yield sso_stub, store_stub, sso, store
        sso_stub.assert_no_pending_responses()


PS = "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-2222222222222222"


def stubbed_strategy(sso: Any, store: Any, **kwargs: Any) -> IdentityCenterAssignment:
    options: dict[str, Any] = {
        "region": REGION,
        "identity_store_id": STORE,
        "instance_arn": INSTANCE,
        "account_id": ACCOUNT,
        "permission_set_arn": PS,
        "poll_interval": 0.01,
        "backoff": 0.01,
        "sso_admin": sso,
        "identitystore": store,
        **kwargs,
    }
    return IdentityCenterAssignment(**options)


def expect_lookup(store_stub: Stubber) -> None:
    store_stub.add_response(
        "get_user_id",
        {
            "UserId": "u-alice",
            "IdentityStoreId": STORE,
            "UserArn": f"arn:aws:identitystore::{ACCOUNT}:identitystore/{STORE}/user/u-alice",
        },
        None,
    )


def status(state: str, **extra: str) -> dict[str, Any]:
    return {
        "AccountAssignmentCreationStatus": {
            "Status": state,
            "RequestId": "b5f7e2c4-6a1d-4f3e-9c2b-8d7a6e5f4c3b",
            **extra,
        }
    }


def test_in_progress_then_failed_is_a_grant_error_with_aws_reason(stubbed) -> None:
    sso_stub, store_stub, sso, store = stubbed
    expect_lookup(store_stub)
    sso_stub.add_response("list_account_assignments", {"AccountAssignments": []})
    sso_stub.add_response("create_account_assignment", status("IN_PROGRESS"))
    sso_stub.add_response("describe_account_assignment_creation_status", status("IN_PROGRESS"))
    sso_stub.add_response(
        "describe_account_assignment_creation_status",
        status("FAILED", FailureReason="Received a 404 status error: No permission set found"),
    )
    with pytest.raises(GrantError, match="FAILED: Received a 404 status error: No permission"):
        stubbed_strategy(sso, store).grant(grant_context())


def test_conflict_and_throttling_are_retried(stubbed) -> None:
    sso_stub, store_stub, sso, store = stubbed
    expect_lookup(store_stub)
    sso_stub.add_client_error("list_account_assignments", "ThrottlingException", "Rate exceeded")
    sso_stub.add_response("list_account_assignments", {"AccountAssignments": []})
    sso_stub.add_client_error(
        "create_account_assignment",
        "ConflictException",
        "Another operation is in progress on this account",
        http_status_code=409,
    )
    sso_stub.add_response("create_account_assignment", status("SUCCEEDED"))
    granted = stubbed_strategy(sso, store).grant(grant_context())
    assert granted.undo["principal_id"] == "u-alice" and not granted.already_had


def test_endless_conflict_gives_up_at_the_deadline(stubbed) -> None:
    sso_stub, store_stub, sso, store = stubbed
    expect_lookup(store_stub)
    sso_stub.add_response("list_account_assignments", {"AccountAssignments": []})
    for _ in range(50):
        sso_stub.add_client_error("create_account_assignment", "ConflictException", "busy")
    started = time.monotonic()
    with pytest.raises(GrantError, match=r"still ConflictException after 0\.5s"):
        stubbed_strategy(sso, store, timeout=0.5, backoff=0.05).grant(grant_context())
    assert time.monotonic() - started < 1.5
    sso_stub._queue.clear()  # the calls the deadline spared


def test_still_in_progress_at_the_deadline_is_a_grant_error(stubbed) -> None:
    sso_stub, store_stub, sso, store = stubbed
    expect_lookup(store_stub)
    sso_stub.add_response("list_account_assignments", {"AccountAssignments": []})
    sso_stub.add_response("create_account_assignment", status("IN_PROGRESS"))
    for _ in range(50):
        sso_stub.add_response("describe_account_assignment_creation_status", status("IN_PROGRESS"))
    with pytest.raises(GrantError, match=r"still IN_PROGRESS after 0\.3s"):
        stubbed_strategy(sso, store, timeout=0.3, poll_interval=0.05).grant(grant_context())
    sso_stub._queue.clear()


def test_other_errors_are_grant_errors_at_once(stubbed) -> None:
    sso_stub, store_stub, sso, store = stubbed
    expect_lookup(store_stub)
    sso_stub.add_client_error(
        "list_account_assignments", "AccessDeniedException", "User is not authorized"
    )
    with pytest.raises(GrantError, match="AccessDeniedException: User is not authorized"):
        stubbed_strategy(sso, store).grant(grant_context())


def test_problems_and_serialisation_per_account() -> None:
    good = IdentityCenterAssignment(
        region=REGION,
        identity_store_id=STORE,
        instance_arn=INSTANCE,
        account_id=ACCOUNT,
        permission_set_arn=PS,
    )
    assert good.problems() == []
    assert good.max_in_flight == 1
    assert good.in_flight_key == f"aws-identity-center:{ACCOUNT}"
    bad = IdentityCenterAssignment(region="", identity_store_id="x", account_id="12")
    assert bad.problems() == [
        "instance_arn '' is not an Identity Center ARN",
        "permission_set_arn '' is not an ARN",
        "account_id '12' is not a 12-digit AWS account id",
        "region is empty (for example region='eu-west-1')",
        "identity_store_id 'x' should look like d-...",
    ]


def test_through_slack_changes_to_one_account_run_one_at_a_time(aws: Moto, bot_factory) -> None:
    """Identity Center takes one permission-set change per account at a time: two approvals at
    once reach it one after the other (the engine's in-flight limit for the account)."""
    from app.slack.ids import Ids
    from tests.support.bot import APPROVER, OUTSIDER
    from tests.support.through_slack import RESOURCE

    mallory = aws.store.create_user(
        IdentityStoreId=STORE,
        UserName="mallory",
        DisplayName="Mallory",
        Name={"GivenName": "Mallory", "FamilyName": "Example"},
        Emails=[{"Value": "mallory@example.com", "Type": "work", "Primary": True}],
    )["UserId"]
    sso = boto3.client("sso-admin", endpoint_url=aws.url, region_name=REGION)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def enter(**_: Any) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.2)  # a slow AWS: calls would overlap if nothing serialised them

    def leave(**_: Any) -> None:
        with lock:
            state["now"] -= 1

    sso.meta.events.register("before-call.sso-admin", enter)
    sso.meta.events.register("after-call.sso-admin", leave)
    grant = assignment(aws, sso_admin=sso)
    bot = target_bot(bot_factory, grant, durations=[timedelta(minutes=5)])
    requests = [
        bot.request_access(user, resource=RESOURCE, duration=timedelta(minutes=5))[0]
        for user in (REQUESTER_ID, OUTSIDER)
    ]
    for request in requests:
        bot.click(APPROVER, Ids.APPROVE, request)
    for request in requests:
        wait_until(
            lambda r=request: (g := bot.grant_of(r)) is not None and g.state == "active",
            what="both grants to be active",
        )
    assert aws.assigned(aws.alice) and aws.assigned(mallory)
    assert state["max"] == 1

"""AWS IAM Identity Center strategies, through boto3 and the standard AWS credential chain.

`IdentityCenterAssignment`: the requester gets a permission set on an account (an account
assignment); revoke deletes that assignment. Assignments are asynchronous: the request's status
is polled until SUCCEEDED or FAILED within the strategy's deadline. Identity Center makes one
permission-set change per account at a time, so the engine runs one call per account at once
(`in_flight_key`, `max_in_flight = 1`) and a `ConflictException` or throttling is retried.

`IdentityCenterGroup`: the requester is added to an Identity Center group for the grant's
lifetime (the group carries the assignments).

The requester is the Identity Center user whose email is their Slack email, or whose user name
`users` maps them to (a dict keyed by Slack ID or email, or a function).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.grants.base import (
    GrantContext,
    Granted,
    GrantError,
    GrantUser,
    IdentityMap,
    Retry,
    identity_map_problem,
    map_identity,
)

RETRYABLE = {
    "ConflictException",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}
NOT_FOUND = "ResourceNotFoundException"


@dataclass
class _Aws:
    """What both strategies share: clients, the user lookup, calls with retries and a deadline."""

    region: str
    identity_store_id: str  # d-xxxxxxxxxx
    users: IdentityMap | None = None  # to Identity Center user names; default: by email
    timeout: float = 120.0  # one grant or revoke in all, polling included
    poll_interval: float = 2.0
    backoff: float = 1.0  # first wait after a conflict or throttling, doubled each time
    endpoint_url: str | None = None  # a VPC endpoint; tests point it at moto
    retry: Retry = field(default_factory=Retry)
    # Clients handed in (tests give stubbed ones); built from the AWS credential chain if None.
    sso_admin: Any = field(default=None, repr=False, compare=False)
    identitystore: Any = field(default=None, repr=False, compare=False)

    @property
    def deadline(self) -> float:
        return float(self.timeout)

    def _client(self, service: str) -> Any:
        attribute = service.replace("-", "_")
        client = getattr(self, attribute)
        if client is None:
            # boto3 is imported by the first call, not with the workflows: a tenth of a second
            # of every start-up (and of every `accessbot` command) for deployments without AWS.
            import boto3
            from botocore.config import Config

            config = Config(
                region_name=self.region,
                connect_timeout=5,
                read_timeout=15,
                retries={"mode": "standard", "max_attempts": 3},
            )
            client = boto3.session.Session().client(
                service, endpoint_url=self.endpoint_url, config=config
            )
            setattr(self, attribute, client)
        return client

    def _call(self, what: str, started: float, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """`fn(**kwargs)`, retrying conflicts and throttling until the deadline."""
        from botocore.exceptions import BotoCoreError, ClientError

        wait = self.backoff
        while True:
            try:
                return fn(**kwargs)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code, message = error.get("Code", "?"), error.get("Message", "")
                if code not in RETRYABLE:
                    raise _AwsError(code, f"{what}: {code}: {message}") from exc
                if time.monotonic() - started + wait > self.timeout:
                    raise GrantError(
                        f"{what}: still {code} after {self.timeout:g}s ({message}); retried later"
                    ) from exc
            except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
                raise GrantError(f"{what}: {type(exc).__name__}: {exc}") from exc
            time.sleep(wait)
            wait = min(wait * 2, 30.0)

    def _user_id(self, user: GrantUser, started: float) -> str:
        if self.users is None:
            if not user.email:
                raise GrantError(f"user {user.slack_id} has no email address to look up in AWS")
            path, value = "emails.value", user.email
        else:
            path, value = "userName", map_identity(self.users, user, "Identity Center user name")
        try:
            answer = self._call(
                f"find Identity Center user {value}",
                started,
                self._client("identitystore").get_user_id,
                IdentityStoreId=self.identity_store_id,
                AlternateIdentifier={
                    "UniqueAttribute": {"AttributePath": path, "AttributeValue": value}
                },
            )
        except _AwsError as exc:
            if exc.code == NOT_FOUND:
                raise GrantError(
                    f"no Identity Center user with {path} {value!r} in {self.identity_store_id}"
                ) from exc
            raise
        return str(answer["UserId"])


class _AwsError(GrantError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class IdentityCenterAssignment(_Aws):
    instance_arn: str = ""  # arn:aws:sso:::instance/ssoins-...
    account_id: str = ""
    permission_set_arn: str = ""  # arn:aws:sso:::permissionSet/ssoins-.../ps-...
    max_in_flight: int = 1  # Identity Center: one permission-set change per account at a time

    @property
    def in_flight_key(self) -> str:
        return f"aws-identity-center:{self.account_id}"

    def describe(self) -> str:
        name = self.permission_set_arn.rsplit("/", 1)[-1]
        return f"AWS Identity Center: permission set {name} on account {self.account_id}"

    def problems(self) -> list[str]:
        found = []
        if not self.instance_arn.startswith("arn:aws"):
            found.append(f"instance_arn {self.instance_arn!r} is not an Identity Center ARN")
        if not self.permission_set_arn.startswith("arn:aws"):
            found.append(f"permission_set_arn {self.permission_set_arn!r} is not an ARN")
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            found.append(f"account_id {self.account_id!r} is not a 12-digit AWS account id")
        return found + _common_problems(self)

    def grant(self, ctx: GrantContext) -> Granted:
        started = time.monotonic()
        target = {
            "principal_id": self._user_id(ctx.user, started),
            "account_id": self.account_id,
            "permission_set_arn": self.permission_set_arn,
            "instance_arn": self.instance_arn,
        }
        had = self._assigned(target, started)
        if not had:
            self._change("create", target, started)
        return Granted(undo=target, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        started = time.monotonic()
        target = dict(ctx.undo)
        if "principal_id" not in target:  # recorded before strategies returned undo data
            target = {
                "principal_id": self._user_id(ctx.user, started),
                "account_id": self.account_id,
                "permission_set_arn": self.permission_set_arn,
                "instance_arn": self.instance_arn,
            }
        if self._assigned(target, started):
            self._change("delete", target, started)

    def _assigned(self, target: dict[str, str], started: float) -> bool:
        client = self._client("sso-admin")
        arguments: dict[str, Any] = {
            "InstanceArn": target["instance_arn"],
            "AccountId": target["account_id"],
            "PermissionSetArn": target["permission_set_arn"],
        }
        while True:
            page = self._call(
                "list account assignments", started, client.list_account_assignments, **arguments
            )
            for assignment in page.get("AccountAssignments", []):
                if (
                    assignment.get("PrincipalType") == "USER"
                    and assignment.get("PrincipalId") == target["principal_id"]
                ):
                    return True
            if not page.get("NextToken"):
                return False
            arguments["NextToken"] = page["NextToken"]

    def _change(self, how: str, target: dict[str, str], started: float) -> None:
        client = self._client("sso-admin")
        what = f"{how} account assignment on {target['account_id']}"
        call = (
            client.create_account_assignment
            if how == "create"
            else client.delete_account_assignment
        )
        answer = self._call(
            what,
            started,
            call,
            InstanceArn=target["instance_arn"],
            TargetId=target["account_id"],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=target["permission_set_arn"],
            PrincipalType="USER",
            PrincipalId=target["principal_id"],
        )
        key = (
            "AccountAssignmentCreationStatus"
            if how == "create"
            else "AccountAssignmentDeletionStatus"
        )
        status = answer[key]
        while status.get("Status") == "IN_PROGRESS":
            if time.monotonic() - started + self.poll_interval > self.timeout:
                raise GrantError(f"{what}: still IN_PROGRESS after {self.timeout:g}s")
            time.sleep(self.poll_interval)
            request_id = status["RequestId"]
            if how == "create":
                status = self._call(
                    f"{what} (status)",
                    started,
                    client.describe_account_assignment_creation_status,
                    InstanceArn=target["instance_arn"],
                    AccountAssignmentCreationRequestId=request_id,
                )["AccountAssignmentCreationStatus"]
            else:
                status = self._call(
                    f"{what} (status)",
                    started,
                    client.describe_account_assignment_deletion_status,
                    InstanceArn=target["instance_arn"],
                    AccountAssignmentDeletionRequestId=request_id,
                )["AccountAssignmentDeletionStatus"]
        if status.get("Status") != "SUCCEEDED":
            reason = status.get("FailureReason") or "no reason given"
            raise GrantError(f"{what}: {status.get('Status')}: {reason}")


@dataclass
class IdentityCenterGroup(_Aws):
    group_id: str = ""  # the Identity Center group's id (a UUID, not its display name)

    @property
    def in_flight_key(self) -> str:
        return f"aws-identity-store:{self.identity_store_id}"

    def describe(self) -> str:
        return f"AWS Identity Center: member of group {self.group_id}"

    def problems(self) -> list[str]:
        found = [] if self.group_id else ["group_id is empty: give the group's id"]
        return found + _common_problems(self)

    def grant(self, ctx: GrantContext) -> Granted:
        started = time.monotonic()
        user_id = self._user_id(ctx.user, started)
        had = self._membership(self.group_id, user_id, started) is not None
        if not had:
            self._call(
                f"add to group {self.group_id}",
                started,
                self._client("identitystore").create_group_membership,
                IdentityStoreId=self.identity_store_id,
                GroupId=self.group_id,
                MemberId={"UserId": user_id},
            )
        return Granted(undo={"user_id": user_id, "group_id": self.group_id}, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        started = time.monotonic()
        group_id = ctx.undo.get("group_id", self.group_id)
        user_id = ctx.undo.get("user_id") or self._user_id(ctx.user, started)
        membership = self._membership(group_id, user_id, started)
        if membership is not None:
            self._call(
                f"remove from group {group_id}",
                started,
                self._client("identitystore").delete_group_membership,
                IdentityStoreId=self.identity_store_id,
                MembershipId=membership,
            )

    def _membership(self, group_id: str, user_id: str, started: float) -> str | None:
        try:
            answer = self._call(
                f"read membership of group {group_id}",
                started,
                self._client("identitystore").get_group_membership_id,
                IdentityStoreId=self.identity_store_id,
                GroupId=group_id,
                MemberId={"UserId": user_id},
            )
        except _AwsError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
        return str(answer["MembershipId"])


def _common_problems(strategy: _Aws) -> list[str]:
    found = []
    if not strategy.region:
        found.append("region is empty (for example region='eu-west-1')")
    if not strategy.identity_store_id.startswith("d-"):
        found.append(f"identity_store_id {strategy.identity_store_id!r} should look like d-...")
    if not strategy.timeout > 0:
        found.append(f"timeout must be positive, not {strategy.timeout!r}")
    if problem := identity_map_problem("users", strategy.users):
        found.append(problem)
    return found

"""Callback, block and action ids shared by the Block Kit builders and the listeners."""

from enum import StrEnum


class Ids(StrEnum):
    REQUEST_MODAL = "access_request"
    RESOURCE_BLOCK = "resource"
    JUSTIFICATION_BLOCK = "justification"
    DURATION_BLOCK = "duration"
    TICKET_BLOCK = "ticket"
    VALUE = "value"  # the action id of every input element
    RESOURCE_SELECT = "resource_select"  # the resource element's action id (dispatches)
    DECISION_BLOCK = "decision"
    APPROVE = "approve_request"
    DENY = "deny_request"
    APPROVE_FOR = "approve_request_for"  # approve a shorter duration than asked (a menu)
    REVIEW = "review_break_glass"  # an approver has checked a break-glass grant
    GIVE_BACK = "revoke_grant"  # the requester gives access back, or an approver takes it away
    EXTEND = "extend_grant"
    CANCEL = "cancel_request"
    EXTENSION_MODAL = "access_extension"

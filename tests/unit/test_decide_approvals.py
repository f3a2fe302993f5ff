"""Human in the loop: an approval is decided once, before it expires."""

from datetime import timedelta

from commands import models as cmd
from eventstore import events as ev
from eventstore.errors import (
    ApprovalAlreadyDecidedError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ValidationProblemError,
)

from .session_spec import NOW, given, started

EXPIRES = NOW + timedelta(hours=1)
REQUESTED = ev.ApprovalRequested(
    approval_id="a1",
    action="refund 42.00 EUR",
    risk="high",
    requested_by="policy",
    expires_at=EXPIRES,
    details={"amount": "42.00"},
)
APPROVED = ev.ApprovalDecided(approval_id="a1", decision="approved", reviewer="ann", comment="ok", decided_at=NOW)


def test_request_approval_records_approval_requested():
    given(started()).when(
        cmd.RequestApproval(
            approval_id="a1",
            action="refund 42.00 EUR",
            risk="high",
            requested_by="policy",
            expires_at=EXPIRES,
            details={"amount": "42.00"},
        )
    ).then(REQUESTED)


def test_request_approval_assigns_an_id_when_none_given():
    given(started()).when(cmd.RequestApproval(action="refund", requested_by="policy")).then(
        ev.ApprovalRequested(approval_id="id-1", action="refund", requested_by="policy")
    )


def test_request_approval_is_refused_when_it_expires_before_now():
    given(started()).when(cmd.RequestApproval(action="refund", requested_by="policy", expires_at=NOW)).then_raises(
        ValidationProblemError, "invalid_input"
    )


def test_request_approval_yields_nothing_when_decided_again():
    given(started(), REQUESTED).when(
        cmd.RequestApproval(approval_id="a1", action="refund 42.00 EUR", requested_by="policy")
    ).then_nothing()


def test_request_approval_is_refused_when_id_already_decided():
    given(started(), REQUESTED, APPROVED).when(
        cmd.RequestApproval(approval_id="a1", action="again", requested_by="policy")
    ).then_raises(ApprovalAlreadyDecidedError, "approval_already_decided")


def test_decide_approval_records_approval_decided_at_now():
    given(started(), REQUESTED).when(
        cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="ann", comment="ok")
    ).then(APPROVED)


def test_decide_approval_is_refused_when_approval_unknown():
    error = (
        given(started())
        .when(cmd.DecideApproval(approval_id="zz", decision="approved", reviewer="ann"))
        .then_raises(ApprovalNotFoundError, "approval_not_found")
    )
    assert error.status == 404


def test_decide_approval_yields_nothing_when_decided_again_the_same_way():
    given(started(), REQUESTED, APPROVED).when(
        cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="bob")
    ).then_nothing()


def test_decide_approval_is_refused_when_already_decided_the_other_way():
    error = (
        given(started(), REQUESTED, APPROVED)
        .when(cmd.DecideApproval(approval_id="a1", decision="rejected", reviewer="bob"))
        .then_raises(ApprovalAlreadyDecidedError, "approval_already_decided")
    )
    assert error.extra["decision"] == "approved"


def test_decide_approval_is_refused_when_expired():
    given(started(), REQUESTED).when(
        cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="ann"),
        now=EXPIRES,
    ).then_raises(ApprovalExpiredError, "approval_expired")


def test_decide_approval_accepts_a_decision_just_before_expiry():
    given(started(), REQUESTED).when(
        cmd.DecideApproval(approval_id="a1", decision="rejected", reviewer="ann"),
        now=EXPIRES - timedelta(microseconds=1),
    ).then(
        ev.ApprovalDecided(
            approval_id="a1", decision="rejected", reviewer="ann", decided_at=EXPIRES - timedelta(microseconds=1)
        )
    )


def test_decide_approval_never_expires_when_no_expiry_set():
    no_expiry = REQUESTED.model_copy(update={"expires_at": None})
    given(started(), no_expiry).when(
        cmd.DecideApproval(approval_id="a1", decision="approved", reviewer="ann", comment="ok"),
        now=NOW + timedelta(days=365),
    ).then(APPROVED.model_copy(update={"decided_at": NOW + timedelta(days=365)}))

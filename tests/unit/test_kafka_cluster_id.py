"""The KRaft cluster id the stack formats its storage with is never read as an option."""

from __future__ import annotations

import base64

from agentlog.stack.kafka import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_and_are_base64url_uuids() -> None:
    ids = [new_cluster_id() for _ in range(5_000)]  # one in 64 started with "-" before
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 and len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)

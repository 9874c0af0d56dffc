from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IdNodeLease(Model):
    """Which process may mint ids on a node number, and until when. A row is claimed
    with one conditional write (see node_lease.py), renewed by its holder's heartbeat,
    and given back by setting its end to the moment of release."""

    node = fields.IntField(primary_key=True, generated=False)
    # host:pid:random, unique per claim: the random part tells a restarted process
    # with a reused pid from the one that held the node before.
    holder = fields.CharField(max_length=120)
    claimed_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "id_node_leases"

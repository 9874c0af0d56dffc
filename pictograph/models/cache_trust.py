from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RedisEpoch(Model):
    """Which Redis instance the caches were last vouched for, and the epoch its marker
    must hold (see cache/trust.py). Kept here because a Redis that rolls back takes its
    own copy of both back with it. One row per Redis (a cluster has one per shard)."""

    name = fields.CharField(max_length=64, primary_key=True)
    epoch = fields.CharField(max_length=64)
    # The run_id of the instance that was purged and marked with the epoch: a restart
    # or a failover brings a new one.
    run_id = fields.CharField(max_length=64)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "redis_epochs"

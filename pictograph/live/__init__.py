"""What the rest of the system tells open feedUpdates subscriptions (over the live hub,
cache/pubsub.py)."""

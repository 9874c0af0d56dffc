"""Live feed updates: Redis pub/sub, shared by every subscription of a process."""

"""What each query, mutation and subscription does, per domain. Thin orchestration."""

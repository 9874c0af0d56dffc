"""The home feed: what each user sees, newest first."""

"""Accounts: who a user is (names, passwords), their sessions (bearer tokens), and the
changes they make to their own account."""

"""What a username, a display name and a bio may be."""

from __future__ import annotations

import re

from pictograph.errors import BadUserInput

USERNAME = re.compile(r"[a-z0-9._]{3,30}")
MAX_DISPLAY_NAME = 64
MAX_BIO = 300


def normalise_username(raw: str) -> str:
    return raw.strip().lower()


def is_possible_username(username: str) -> bool:
    """Whether any account can have this (normalised) name: others are not looked up."""
    return USERNAME.fullmatch(username) is not None


def check_username(username: str) -> None:
    if not is_possible_username(username):
        raise BadUserInput(
            "a username is 3 to 30 characters of a-z, 0-9, '.' and '_'", field="username"
        )


def clean_text(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise BadUserInput(f"{field} has at most {limit} characters", field=field)
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        raise BadUserInput(f"{field} contains control characters", field=field)
    return value

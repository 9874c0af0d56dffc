"""Whether a configured secret key is fit to sign media URLs and upload tickets. Anyone
who knows the key can forge both, so a key copied from an example is as good as none."""

from __future__ import annotations

MIN_LENGTH = 32
# Random keys of 32 characters or more use far more than this; a run of one word or
# a keyboard pattern uses fewer.
MIN_DISTINCT_CHARACTERS = 10
# Found in example values (docs, compose files, tutorials). Compared with the key's
# letters and digits, lower-cased, so "Change_Me" and "change-me" both match. Seven
# letters or more, so a random key contains one by chance about once in 10^8.
PLACEHOLDERS = ("changeme", "changethis", "replaceme", "placeholder", "yoursecret",
                "secretkey", "example", "insecure", "notsecret")
HOW_TO_MAKE_ONE = ("generate one with: python -c 'import secrets; "
                   "print(secrets.token_urlsafe(48))'")


def weakness(key: str | None) -> str | None:
    """What is wrong with `key` (never quoting it), or None when it will do."""
    if not key:
        return ("must be set when the database is PostgreSQL, the same on every process; "
                + HOW_TO_MAKE_ONE)
    if len(key) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters long; {HOW_TO_MAKE_ONE}"
    plain = "".join(character for character in key.lower() if character.isalnum())
    if any(word in plain for word in PLACEHOLDERS):
        return f"is a placeholder from an example, which anyone can read; {HOW_TO_MAKE_ONE}"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return f"repeats too few characters to be random; {HOW_TO_MAKE_ONE}"
    return None

"""The Node interface and opaque global ids ("User:42", base64url-encoded)."""

from __future__ import annotations

import base64
import binascii

import strawberry

MAX_PK = (1 << 63) - 1


@strawberry.interface
class Node:
    id: strawberry.ID


def encode_global_id(type_name: str, pk: int) -> strawberry.ID:
    raw = f"{type_name}:{pk}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def decode_global_id(value: str) -> tuple[str, int] | None:
    """(type name, primary key), or None for anything we did not mint."""
    try:
        padded = value + "=" * (-len(value) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        number = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # Past a BIGINT no row can exist, and the database refuses the number outright.
    return (type_name, number) if 0 < number <= MAX_PK else None


def decode_id_of(value: str, type_name: str) -> int | None:
    decoded = decode_global_id(value)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]

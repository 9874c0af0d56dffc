"""Relay-style cursor connections: PageInfo and opaque cursors over time-sortable ids."""

from __future__ import annotations

import base64
import binascii

import strawberry

from pictograph.errors import BadUserInput

MAX_PAGE = 100
MAX_POSITION = (1 << 63) - 1


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"c:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        prefix, _, position = raw.partition(":")
        number = int(position)
        # Past a BIGINT no position exists, and the database refuses the number outright.
        if prefix != "c" or abs(number) > MAX_POSITION:
            raise ValueError(prefix)
        return number
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput("`after` is not a cursor this API gave out", field="after") from None


def page_size(first: int | None, default: int = 20) -> int:
    """`first` (null means the default), capped at MAX_PAGE; negative is an error."""
    if first is None:
        return default
    if first < 0:
        raise BadUserInput("`first` cannot be negative", field="first")
    return min(first, MAX_PAGE)

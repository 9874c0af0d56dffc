"""The photos Pictograph takes and serves: the sizes it makes, and the image types it
accepts, with their file extensions. Defined once; images.py, uploads, the media worker,
the seed and the schema take them from here."""

from __future__ import annotations

from enum import StrEnum


class MediaSize(StrEnum):
    THUMBNAIL = "THUMBNAIL"
    FULL = "FULL"


# The longest side of each size, in pixels (never upscaled).
LONGEST_SIDE = {MediaSize.THUMBNAIL: 320, MediaSize.FULL: 1080}

# Content type -> (Pillow's format name, file extension), for everything accepted.
IMAGE_TYPES = {
    "image/jpeg": ("JPEG", "jpg"),
    "image/png": ("PNG", "png"),
    "image/webp": ("WEBP", "webp"),
}
ACCEPTED_TYPES = tuple(IMAGE_TYPES)


def extension(content_type: str) -> str:
    return IMAGE_TYPES[content_type][1]


def content_type_of(format_name: str) -> str:
    """The content type of a Pillow format name (JPEG, PNG, WEBP)."""
    return next(ct for ct, (name, _) in IMAGE_TYPES.items() if name == format_name)

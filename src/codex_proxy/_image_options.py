"""The image tool's options and the values the upstream accepts for each.

Shared by the settings (``CODEX_IMAGE_*`` are checked at start) and the translation of
requests (a client's tool fields, the Images API's form fields): one rule for both.
"""

from __future__ import annotations

import re
from typing import Any

IMAGE_ENV_OPTIONS = {
    "CODEX_IMAGE_MODEL": "model",
    "CODEX_IMAGE_SIZE": "size",
    "CODEX_IMAGE_QUALITY": "quality",
    "CODEX_IMAGE_FORMAT": "output_format",
    "CODEX_IMAGE_BACKGROUND": "background",
    "CODEX_IMAGE_COMPRESSION": "output_compression",
    "CODEX_IMAGE_MODERATION": "moderation",
    "CODEX_IMAGE_PARTIAL_IMAGES": "partial_images",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "quality": ("auto", "low", "medium", "high"),
    "output_format": ("png", "jpeg", "webp"),
    "background": ("auto", "opaque", "transparent"),
    "moderation": ("auto", "low"),
    "input_fidelity": ("low", "high"),
    "action": ("auto", "generate", "edit"),
}
RANGES = {"output_compression": (0, 100), "partial_images": (0, 3)}
_SIZE = re.compile(r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$")


class ImageOptionError(ValueError):
    """An image tool option with a value the upstream would reject; says what is allowed."""


def check_option(name: str, value: Any, *, from_text: bool = False) -> Any:
    """The normalised value of one image tool option; raises ImageOptionError when invalid.

    ``from_text``: the value comes from an environment variable, so numbers arrive as text.
    """
    if name == "model":
        if not isinstance(value, str) or not value:
            raise ImageOptionError("must be a model name")
        return value
    if name == "size":
        if not isinstance(value, str) or not _SIZE.match(value):
            raise ImageOptionError(
                "must be auto, 1024x1024, 1536x1024, 1024x1536 or another WIDTHxHEIGHT"
            )
        return value
    if name in CHOICES:
        text = value.lower() if isinstance(value, str) else value
        if name == "output_format" and text == "jpg":
            text = "jpeg"
        if text not in CHOICES[name]:
            raise ImageOptionError(f"must be one of {', '.join(CHOICES[name])}")
        return text
    if name in RANGES:
        return whole_number(value, *RANGES[name], from_text=from_text)
    return value  # other fields (input_image_mask, ...) pass through as given


def whole_number(value: Any, low: int, high: int, *, from_text: bool = False) -> int:
    """An integer from ``low`` to ``high``; ``from_text``: it may arrive as text (a form field,
    an environment variable). Raises ImageOptionError naming the range."""
    number = value
    if from_text and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ImageOptionError(f"must be a whole number from {low} to {high}")
    return number

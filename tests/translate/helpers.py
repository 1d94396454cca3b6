"""Constants shared by the stream and aggregate translator tests."""

from __future__ import annotations

CID = "chatcmpl-test"
CREATED = 1760000000
MODEL = "gpt-5"
DEFAULT_CHAT_USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 12,
    "total_tokens": 32,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}

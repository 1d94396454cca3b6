"""codex-proxy: an OpenAI-compatible Chat Completions gateway over the Responses API."""

__version__ = "0.1.0"

"""The pure translation core: chat requests to Responses requests, Responses events to chat.

Nothing in this package does I/O, reads the environment or imports starlette/httpx.
"""

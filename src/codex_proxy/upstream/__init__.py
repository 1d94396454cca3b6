"""The upstream shell: one HTTP client, credentials, the Responses call."""

"""The ``torua`` client commands: a thin HTTP client over the coordinator API."""

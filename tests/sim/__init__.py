"""The deterministic whole-cluster simulator (``python -m tests.sim``)."""

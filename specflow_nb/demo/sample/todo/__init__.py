"""A tiny to-do list (the sample project's code; the demo agent adds to it)."""

"""qwt.cli (in progress)."""

"""qwt.data (in progress)."""

"""qwt.nn (in progress)."""

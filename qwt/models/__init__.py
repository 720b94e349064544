"""qwt.models (in progress)."""

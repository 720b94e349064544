"""qwt.mps (in progress)."""

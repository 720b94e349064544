"""qwt.training (in progress)."""

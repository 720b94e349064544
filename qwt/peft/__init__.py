"""qwt.peft (in progress)."""

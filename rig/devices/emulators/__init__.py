"""Firmware emulators on pseudo-terminals (tests and --simulate)."""

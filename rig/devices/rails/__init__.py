"""One driver per rail / stage firmware."""

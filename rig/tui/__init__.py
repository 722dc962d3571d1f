"""The Textual terminal UI: the operator's cockpit at the rig."""

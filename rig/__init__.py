"""stackrig: capture-and-stack controller (rig side: devices, sessions, CLI, TUI)."""

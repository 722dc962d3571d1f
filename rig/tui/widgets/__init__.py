"""Widgets of the terminal UI that are not plain Textual ones."""

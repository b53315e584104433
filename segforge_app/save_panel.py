"""Placeholder: the save panel is being built (registers nothing yet)."""

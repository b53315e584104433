"""Placeholder: the interactive panel is being built (registers nothing yet)."""

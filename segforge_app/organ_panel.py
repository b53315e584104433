"""Placeholder: the organ panel is being built (registers nothing yet)."""

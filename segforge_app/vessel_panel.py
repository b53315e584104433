"""Placeholder: the vessel panel is being built (registers nothing yet)."""

"""The ng command: one module per command group, on top of the library (nothing in the library imports it)."""

"""Lowest layer: expected errors, quoting names in messages, devup's own files and folders.
Imports no other folder."""

"""The control channel: the running devup's Unix-socket server and the client other commands use.
Above run/; below cli/."""

"""The `devup` command line: the fast entry point, click commands, and one module per command.
The top layer: may import every other folder; none imports it."""

"""devup: run all of a monorepo's dev services with one command."""

__version__ = "0.1.0"

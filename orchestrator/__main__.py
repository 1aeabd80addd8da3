"""`python -m orchestrator` is the `devup` command."""

from orchestrator.cli import main

main()

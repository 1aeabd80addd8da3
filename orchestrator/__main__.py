"""`python -m orchestrator` is the `devup` command."""

from orchestrator.cli.entry import main

main()

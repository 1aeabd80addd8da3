"""`python -m orchestrator` is the `devup` command."""

from orchestrator.entry import main

main()

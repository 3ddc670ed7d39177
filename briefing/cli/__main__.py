"""`python -m briefing.cli`."""

from briefing.cli import main

main()

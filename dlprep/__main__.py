"""`python -m dlprep` runs the command-line tool."""

from dlprep.cli import main

main()

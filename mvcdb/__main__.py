"""`python -m mvcdb` runs the command line."""

from mvcdb.cli import main

main()

"""`python -m lwa_cutout`: the lwa-cutout command line."""

from lwa_cutout.cli import main

main()

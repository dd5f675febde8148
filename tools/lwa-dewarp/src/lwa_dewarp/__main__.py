"""`python -m lwa_dewarp` runs the `lwa-dewarp` command line."""

from lwa_dewarp.cli import main

main()

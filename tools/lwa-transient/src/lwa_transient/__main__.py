from lwa_transient.cli import main

main()

from lwa_flag.cli import main

main()

from lwa_peel.cli import main

main()

from lwa_calib.cli import main

main()

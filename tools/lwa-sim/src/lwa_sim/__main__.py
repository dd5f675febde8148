from lwa_sim.cli import main

main()

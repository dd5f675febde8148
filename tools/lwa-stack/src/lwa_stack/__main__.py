from lwa_stack.cli import main

main()

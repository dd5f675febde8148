from lwa_db.cli import main

main()

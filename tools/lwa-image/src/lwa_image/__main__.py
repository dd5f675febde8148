from lwa_image.cli import main

main()

from unifashion.cli import main

main()

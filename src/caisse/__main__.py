from caisse.cli import main

main()

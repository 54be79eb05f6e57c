from kago.cli import main

main()

from logfactory.cli import main

main()

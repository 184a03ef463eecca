from lendchain.cli import main

main()

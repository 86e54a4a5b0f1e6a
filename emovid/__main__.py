from emovid.cli import main

main()

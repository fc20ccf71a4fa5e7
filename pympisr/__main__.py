from pympisr.cli import main

main()

from jointseg.cli import main

main()

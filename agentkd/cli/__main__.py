from agentkd.cli.main import main

main()

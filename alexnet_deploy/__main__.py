from alexnet_deploy.cli import main

main()

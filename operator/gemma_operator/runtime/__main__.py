import sys

from gemma_operator.cli import main

sys.exit(main(["operator", *sys.argv[1:]]))

"""The ``gemmaft`` command: a thin package on top that dispatches each subcommand to the operator
(``gemma_operator``), the trainer (``gemma_trainer``), the contract (``gemma_api``) or the local demo
(``gemma_local``), importing only what the subcommand needs (each image holds only its own side)."""

"""The ``segforge`` command line: one subcommand per job (serve, models, vessel...)."""

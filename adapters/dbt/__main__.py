"""`python -m insync.adapters.dbt build ...` works before the `insync` entry point exists."""

from insync.adapters.dbt.cli import main

main()

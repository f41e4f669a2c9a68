"""The subcommands of raasd, one module each."""

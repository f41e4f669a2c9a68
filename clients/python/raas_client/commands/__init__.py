"""The researcher CLI's commands, one module each (registered in raas_client/cli.py)."""

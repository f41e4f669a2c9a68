"""raas_client: the researcher SDK for raas robots. Never imports `raas` (the daemon)."""

__version__ = "0.1.0"

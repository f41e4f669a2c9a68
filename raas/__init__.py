"""raas: robots as a service. The robot daemon, its control loop and its operator CLI."""

__version__ = "0.1.0"

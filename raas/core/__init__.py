"""The control loop and what it stands on: clock, deadline grid, RT settings, timing records."""

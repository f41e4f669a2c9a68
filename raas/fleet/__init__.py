"""The robot side of evaluation jobs: `raasd worker`, a client of its robot (raas_client's
RemoteRobot, with the lease the service minted for the job) and of the service (the robot's
token). Nothing in the loop or the transport imports this package. docs/fleet.md."""

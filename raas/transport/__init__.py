"""The robot on the network: control and stream sockets, sessions, remote step.

The wire protocol is raas_client.wire; docs/protocol.md describes both."""

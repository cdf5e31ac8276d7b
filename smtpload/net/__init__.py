"""The only trio/socket code: client sessions, the runner, and the sink server."""

"""smtpload's test suite; a package so that tests can import ``tests.peers``."""

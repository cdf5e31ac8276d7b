"""Benchmarks, run by hand (see the README, Performance); a package so that tests can import
their pure parts."""

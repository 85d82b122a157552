"""Scenario tests over real sockets, named after the scenario."""

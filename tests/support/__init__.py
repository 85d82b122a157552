"""Real peers for the tests: a private redis-server, dnsmasq, an SMTP sink, a relay node."""

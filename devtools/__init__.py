"""Tools for developers and tests: private database servers on loopback."""

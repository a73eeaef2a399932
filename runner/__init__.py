"""journey-runner: declarative journey-as-code workflow runner for lifecycle marketing."""

__version__ = "0.1.0"

"""Dripcourse: turn a listicle article into a daily email course."""

__version__ = "0.1.0"

"""Delivery backends: tiny classes that put finished messages somewhere; they never render."""

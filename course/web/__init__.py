"""Web front ends: the operator preview (loopback) and the public unsubscribe endpoints."""

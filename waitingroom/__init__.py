"""A waiting-room gateway for flash sales."""

"""`make demo`: the whole loop on the local bed, with simulated users."""

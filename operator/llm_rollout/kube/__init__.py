"""Objects the operator owns: pure builders (builders.py) and the I/O that applies them."""

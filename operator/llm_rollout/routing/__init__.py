"""Routing: the routing table a decision produces, and the providers that publish it."""

"""Routing: where each release is served (backends) and the providers that publish the
routing table (the table itself is API: api/routing_table.py)."""

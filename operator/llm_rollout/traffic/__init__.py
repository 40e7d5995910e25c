"""Traffic management around the data plane: where each release is served (`backends`)
and the routing providers that publish the routing table to users (`providers`: the
built-in router, Gateway API, Istio). The table itself is API (api/routing_table.py);
the data plane that reads it is `router/`."""

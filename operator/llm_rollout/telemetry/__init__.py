"""OpenTelemetry traces: the exporter set-up (`export`) and the GenAI semantic conventions
the router and operator speak (`genai`)."""

"""The operator: settings, the reconcile step (I/O around the pure engine), kopf handlers."""

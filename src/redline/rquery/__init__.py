"""rquery: the read-only query language (`query`) and the service that answers queries
(`service`)."""

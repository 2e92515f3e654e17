"""The dashboard: a web page over queues, jobs, dead letters, services and metrics (`app`)."""

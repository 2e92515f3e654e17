"""What every service process shares: its context, the runner, lifecycle, metrics, message
tracking and standby."""

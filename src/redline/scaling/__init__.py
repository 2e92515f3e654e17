"""Discovery and scaling: the registry of running instances, their health, the autoscaling
policy, cscale (desired counts) and its per-host agent, `redline up` and the child processes."""

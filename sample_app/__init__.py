"""Sample application: a demo and test workload for the deployer, not part of it."""

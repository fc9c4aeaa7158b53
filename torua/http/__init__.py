"""HTTP plumbing shared by the coordinator and the nodes: serving, JSON errors, clients."""

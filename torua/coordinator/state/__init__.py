"""The coordinator's state: the shard table with its copy sets, the registry of
nodes, planned shutdowns, the checks each node reported, and their
persistence (a state file, or etcd through ``torua.ha``).

It owns what a restarted coordinator must find again, and nothing that does
I/O besides saving it. It may import ``torua.cluster`` (the pure rules) and
the settings; nothing else of the coordinator.
"""

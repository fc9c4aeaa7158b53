"""Several coordinators, one leader, the cluster state in etcd (SPEC §8)."""

from torua.ha.coordinator import HACoordinator as HACoordinator

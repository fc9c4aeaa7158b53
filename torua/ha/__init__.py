"""Several coordinators, one leader, the cluster state in etcd."""

from torua.ha.coordinator import HACoordinator as HACoordinator

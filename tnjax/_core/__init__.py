"""The objects everything else is a function of: the pooling tree, the tree network
(an immutable pytree) and partitions of its inputs."""

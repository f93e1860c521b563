"""Where tasks run: the pools' shared mechanics, the thread pool and its
configuration, and the process pool (manager, roster, launcher, wire format,
worker side)."""

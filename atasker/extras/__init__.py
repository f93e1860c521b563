"""atasker 0.7's helpers: function collections, Locker, thread-local ``g``."""

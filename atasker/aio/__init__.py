"""asyncio: aloops (a loop in a thread of its own) and async job schedulers."""

"""asyncio: the ALoop (a loop in a thread of its own), the supervisor's
registry of aloops, coroutine tasks, and async job schedulers."""

"""Class tasks (pytask's model): the Task base class, how instances run,
and their control on the supervisor."""

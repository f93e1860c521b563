"""The supervisor's parts: its lifecycle, dispatch of records to pools,
look-up and statistics, and the scheduler registry."""
